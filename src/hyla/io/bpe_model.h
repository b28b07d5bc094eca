// The BPE model of a byte-level tokenizer.json ("model": {"type": "BPE", ...}).
// Works on raw bytes: vocab entries are stored both in their file spelling (GPT-2's
// byte -> character map) and as the bytes they stand for, so a pre-token is never mapped
// to characters. A word is merged as tokenizers' Word::merge_all does: a heap of candidate
// pairs ordered by (merge rank, position), lowest first; results are cached per word.
#pragma once
#include <array>
#include <memory>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "hyla/io/bpe_json.h"

namespace hyla::io::bpe {

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
template <typename V>
using StringMap = std::unordered_map<std::string, V, StringHash, std::equal_to<>>;

// (left id, right id) -> (rank, merged id), open addressing.
class MergeTable {
 public:
  void reserve(size_t n);
  // A later merge of the same pair replaces the earlier one, as in tokenizers.
  void set(int32_t left, int32_t right, int32_t rank, int32_t merged);
  bool find(int32_t left, int32_t right, int32_t& rank, int32_t& merged) const {
    if (slots_.empty()) return false;
    uint64_t key = pack(left, right);
    for (size_t i = mix(key) & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.key == key) return rank = s.rank, merged = s.merged, true;
      if (s.key == kEmpty) return false;
    }
  }
  size_t size() const { return count_; }

 private:
  struct Slot {
    uint64_t key;
    int32_t rank, merged;
  };
  static constexpr uint64_t kEmpty = ~uint64_t(0);
  static uint64_t pack(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }
  static size_t mix(uint64_t k) { return size_t((k * 0x9E3779B97F4A7C15ull) >> 20); }
  std::vector<Slot> slots_;
  size_t mask_ = 0, count_ = 0;
};

// Per-word results, shared by threads: sharded so encoders rarely wait on each other.
class WordCache {
 public:
  bool lookup(std::string_view word, std::vector<int32_t>& out) const;
  void insert(std::string_view word, const int32_t* ids, size_t n) const;
  static constexpr size_t kMaxWordBytes = 256, kCapacity = 1 << 18;

 private:
  static constexpr size_t kShards = 16;
  struct Shard {
    std::mutex mu;
    StringMap<std::vector<int32_t>> map;
  };
  mutable std::array<Shard, kShards> shards_;
};

class BpeModel {
 public:
  static std::unique_ptr<BpeModel> from_json(const JsonAt& model);
  BpeModel() = default;
  BpeModel(const BpeModel&) = delete;  // the cache holds mutexes: keep it behind a pointer

  // Appends the ids of one pre-token (raw bytes).
  void encode_word(std::string_view word, std::vector<int32_t>& out) const;
  // Merges without the cache (the reference path; also used to fill the cache).
  void merge_word(std::string_view word, std::vector<int32_t>& out) const;

  std::optional<int32_t> token_to_id(std::string_view vocab_text) const;
  // The vocab-file spelling of `id`, or null if the vocab has no such id.
  const std::string* id_to_token(int32_t id) const;
  size_t vocab_entries() const { return vocab_.size(); }
  int32_t max_id() const { return int32_t(id_to_text_.size()) - 1; }

 private:
  void read_vocab(const JsonAt& vocab);
  void read_merges(const JsonAt& merges);

  StringMap<int32_t> vocab_;             // file spelling -> id
  StringMap<int32_t> byte_vocab_;        // raw bytes -> id, for ignore_merges
  std::vector<std::string> id_to_text_;  // id -> file spelling ("" for holes)
  std::vector<bool> has_id_;
  std::array<int32_t, 256> byte_ids_{};  // single-byte token ids, -1 if missing
  MergeTable merges_;
  bool ignore_merges_ = false, fuse_unk_ = false;
  int32_t unk_id_ = -1;
  WordCache cache_;
};

}  // namespace hyla::io::bpe
