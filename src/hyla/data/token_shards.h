// Token shards: a prepared corpus on disk. A directory holds `manifest.json` and, per
// split ("train", "val"), files `<split>-NNNNN.tokens`, each memory-mapped for reading.
//
// Shard file (little-endian):
//   0  char[8] "HYLATOKS"       8  u32 format version (1)   12 u32 bytes per token (2|4)
//   16 u64 n_tokens             24 u64 n_documents
//   32 u64 byte offset of the tokens (64)   40 u64 byte offset of the document offsets
//   48 16 bytes zero
//   tokens: n_tokens × (u16|u32), zero-padded to a multiple of 8 bytes
//   document offsets: (n_documents + 1) × u64; document i is tokens [off[i], off[i+1]),
//   its last token is the EOS that separates it from the next.
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace hyla::data {

inline constexpr int kShardFormatVersion = 1;
inline constexpr int kManifestVersion = 1;

enum class TokenDtype { U16, U32 };
TokenDtype dtype_for_vocab(int64_t vocab_size);  // u16 when every id fits
int dtype_bytes(TokenDtype d);
std::string_view dtype_name(TokenDtype d);

struct ShardInfo {
  std::string file;  // relative to the corpus directory
  int64_t tokens = 0, documents = 0;
};

struct SplitInfo {
  int64_t tokens = 0, documents = 0;
  std::vector<ShardInfo> shards;
};

struct SourceInfo {
  std::string path, name, format, sha256;
  std::map<std::string, int64_t> documents, tokens;  // per split
};

struct Manifest {
  int version = kManifestVersion;
  TokenDtype dtype = TokenDtype::U16;
  int64_t vocab_size = 0;
  int32_t eos_id = -1;
  std::string tokenizer_path, tokenizer_sha256;
  uint64_t seed = 0;
  double val_fraction = 0;
  std::map<std::string, SplitInfo> splits;
  std::vector<SourceInfo> sources;

  nlohmann::json to_json() const;
  static Manifest from_json(const nlohmann::json& j, const std::string& where);
  static Manifest load(const std::filesystem::path& dir);  // dir/manifest.json
  void save(const std::filesystem::path& dir) const;       // atomically
};

// Buffers one split's documents and writes a shard file (atomically) whenever
// `max_shard_tokens` would be exceeded. A document never straddles two shards.
class ShardWriter {
 public:
  ShardWriter(std::filesystem::path dir, std::string split, TokenDtype dtype,
              int64_t max_shard_tokens);
  // Appends `tokens` followed by `eos` as one document.
  void add_document(std::span<const int32_t> tokens, int32_t eos);
  SplitInfo finish();  // flushes the last shard

 private:
  void flush();
  std::filesystem::path dir_;
  std::string split_;
  TokenDtype dtype_;
  int64_t max_tokens_;
  std::vector<uint32_t> tokens_;
  std::vector<uint64_t> offsets_{0};
  SplitInfo info_;
};

// One memory-mapped shard file.
class TokenShard {
 public:
  explicit TokenShard(const std::filesystem::path& file);
  ~TokenShard();
  TokenShard(const TokenShard&) = delete;
  TokenShard& operator=(const TokenShard&) = delete;

  int64_t size() const { return n_tokens_; }
  int64_t num_documents() const { return n_docs_; }
  TokenDtype dtype() const { return bytes_ == 2 ? TokenDtype::U16 : TokenDtype::U32; }
  uint32_t at(int64_t i) const;
  // Copies tokens [start, start + n) into `out` (bounds-checked).
  void copy(int64_t start, int64_t n, int64_t* out) const;
  std::span<const uint64_t> doc_offsets() const { return {offsets_, size_t(n_docs_ + 1)}; }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  void* map_ = nullptr;
  size_t map_len_ = 0;
  const uint8_t* tokens_ = nullptr;
  const uint64_t* offsets_ = nullptr;
  int64_t n_tokens_ = 0, n_docs_ = 0;
  int bytes_ = 2;
};

// All shards of one split ("train", or "val", also opened as "validation") of a
// prepared corpus, checked against the manifest.
class TokenDataset {
 public:
  static std::shared_ptr<TokenDataset> open(const std::filesystem::path& dir,
                                            const std::string& split);
  const Manifest& manifest() const { return manifest_; }
  const std::vector<std::unique_ptr<TokenShard>>& shards() const { return shards_; }
  int64_t total_tokens() const { return total_tokens_; }
  int64_t total_documents() const { return total_docs_; }
  // Document `i` across all shards (tokens including its trailing EOS).
  std::vector<int32_t> document(int64_t i) const;

 private:
  Manifest manifest_;
  std::vector<std::unique_ptr<TokenShard>> shards_;
  std::vector<int64_t> doc_starts_;  // cumulative document counts per shard
  int64_t total_tokens_ = 0, total_docs_ = 0;
};

}  // namespace hyla::data
