#include "hyla/io/bpe_model.h"

#include <algorithm>

#include "hyla/io/bpe_unicode.h"

namespace hyla::io::bpe {

void MergeTable::reserve(size_t n) {
  size_t cap = 16;
  while (cap < 2 * n) cap <<= 1;
  slots_.assign(cap, Slot{kEmpty, 0, 0});
  mask_ = cap - 1;
  count_ = 0;
}

void MergeTable::set(int32_t left, int32_t right, int32_t rank, int32_t merged) {
  if (2 * (count_ + 1) > slots_.size()) {  // grow, keeping load under one half
    std::vector<Slot> old = std::move(slots_);
    reserve(std::max<size_t>(16, old.size()));
    for (const Slot& s : old)
      if (s.key != kEmpty) set(int32_t(s.key >> 32), int32_t(uint32_t(s.key)), s.rank, s.merged);
  }
  uint64_t key = pack(left, right);
  for (size_t i = mix(key) & mask_;; i = (i + 1) & mask_) {
    Slot& s = slots_[i];
    if (s.key == key || s.key == kEmpty) {
      count_ += s.key == kEmpty;
      s = Slot{key, rank, merged};
      return;
    }
  }
}

bool WordCache::lookup(std::string_view word, std::vector<int32_t>& out) const {
  size_t h = StringHash{}(word);
  Shard& shard = shards_[(h >> 7) % kShards];
  std::lock_guard<std::mutex> lock(shard.mu);
  auto it = shard.map.find(word);
  if (it == shard.map.end()) return false;
  out.insert(out.end(), it->second.begin(), it->second.end());
  return true;
}

void WordCache::insert(std::string_view word, const int32_t* ids, size_t n) const {
  size_t h = StringHash{}(word);
  Shard& shard = shards_[(h >> 7) % kShards];
  std::lock_guard<std::mutex> lock(shard.mu);
  if (shard.map.size() >= kCapacity / kShards) return;  // full: stop caching, like tokenizers
  shard.map.try_emplace(std::string(word), ids, ids + n);
}

void BpeModel::read_vocab(const JsonAt& f) {
  if (!f.raw().is_object()) f.fail("expected an object {token: id}");
  vocab_.reserve(f.raw().size());
  std::string raw;
  for (auto it = f.raw().begin(); it != f.raw().end(); ++it) {
    JsonAt entry = f.at(it.key());
    int64_t id = entry.integer();
    if (id < 0 || id >= (int64_t(1) << 31)) entry.fail("id out of range");
    if (size_t(id) >= id_to_text_.size()) {
      id_to_text_.resize(size_t(id) + 1);
      has_id_.resize(size_t(id) + 1, false);
    }
    if (has_id_[size_t(id)])
      entry.fail(fmt::format("id {} is also used by `{}`", id, id_to_text_[size_t(id)]));
    has_id_[size_t(id)] = true;
    id_to_text_[size_t(id)] = it.key();
    vocab_.emplace(it.key(), int32_t(id));
    if (vocab_text_to_bytes(it.key(), raw)) byte_vocab_.emplace(raw, int32_t(id));
  }
  for (int b = 0; b < 256; ++b) {
    auto it = byte_vocab_.find(std::string_view(reinterpret_cast<const char*>(&b), 1));
    byte_ids_[size_t(b)] = it == byte_vocab_.end() ? -1 : it->second;
  }
}

void BpeModel::read_merges(const JsonAt& f) {
  size_t n = f.size();
  merges_.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    JsonAt m = f[i];
    std::string left, right;
    if (m.raw().is_string()) {  // legacy "left right"
      std::string s = m.str();
      size_t sp = s.find(' ');
      if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
        m.fail(fmt::format("expected \"left right\" with one space, got \"{}\"", s));
      left = s.substr(0, sp), right = s.substr(sp + 1);
    } else if (m.raw().is_array() && m.raw().size() == 2) {
      left = m[0].str(), right = m[1].str();
    } else {
      m.fail("expected \"left right\" or [\"left\", \"right\"]");
    }
    auto find = [&](const std::string& t) {
      auto it = vocab_.find(t);
      if (it == vocab_.end()) m.fail(fmt::format("token `{}` is not in model.vocab", t));
      return it->second;
    };
    merges_.set(find(left), find(right), int32_t(i), find(left + right));
  }
}

std::unique_ptr<BpeModel> BpeModel::from_json(const JsonAt& m) {
  m.only_keys({"type", "dropout", "unk_token", "continuing_subword_prefix", "end_of_word_suffix",
               "fuse_unk", "byte_fallback", "ignore_merges", "vocab", "merges"});
  if (m.type() != "BPE")
    m.at("type").fail(fmt::format("model `{}` is not supported (hyla reads BPE)", m.type()));
  if (m.has("dropout")) {
    const auto& d = m.raw().at("dropout");
    if (!d.is_number() || d.get<double>() != 0.0)
      m.at("dropout").fail("BPE dropout is not supported (set it to null)");
  }
  if (m.opt_bool("byte_fallback", false)) m.at("byte_fallback").fail("byte_fallback is not supported");
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (m.has(key) && !m.at(key).str().empty()) m.at(key).fail("not supported (must be null)");
  auto model = std::make_unique<BpeModel>();
  model->read_vocab(m.at("vocab"));
  model->read_merges(m.at("merges"));
  model->ignore_merges_ = m.opt_bool("ignore_merges", false);
  model->fuse_unk_ = m.opt_bool("fuse_unk", false);
  if (m.has("unk_token")) {
    std::string unk = m.at("unk_token").str();
    auto id = model->token_to_id(unk);
    if (!id) m.at("unk_token").fail(fmt::format("`{}` is not in model.vocab", unk));
    model->unk_id_ = *id;
  }
  return model;
}

std::optional<int32_t> BpeModel::token_to_id(std::string_view vocab_text) const {
  auto it = vocab_.find(vocab_text);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* BpeModel::id_to_token(int32_t id) const {
  if (id < 0 || size_t(id) >= id_to_text_.size() || !has_id_[size_t(id)]) return nullptr;
  return &id_to_text_[size_t(id)];
}

void BpeModel::encode_word(std::string_view word, std::vector<int32_t>& out) const {
  bool cacheable = word.size() <= WordCache::kMaxWordBytes;
  if (cacheable && cache_.lookup(word, out)) return;
  size_t before = out.size();
  merge_word(word, out);
  if (cacheable) cache_.insert(word, out.data() + before, out.size() - before);
}

namespace {
struct Symbol {
  int32_t id, prev, next, len;
};
struct Candidate {
  int32_t rank, pos, merged;
};
// Heap order: the lowest rank on top, then the leftmost position.
bool later(const Candidate& a, const Candidate& b) {
  return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos;
}
}  // namespace

void BpeModel::merge_word(std::string_view word, std::vector<int32_t>& out) const {
  if (ignore_merges_) {
    auto it = byte_vocab_.find(word);
    if (it != byte_vocab_.end()) return out.push_back(it->second);
  }
  thread_local std::vector<Symbol> syms;
  thread_local std::vector<Candidate> heap;
  syms.clear();
  heap.clear();
  // Initial symbols: one per byte. A byte missing from the vocab becomes unk (runs fused
  // if fuse_unk) or, without an unk token, is dropped, as tokenizers' merge_word does.
  int32_t unk_len = 0;
  auto flush_unk = [&] {
    if (unk_len) syms.push_back({unk_id_, 0, 0, unk_len});
    unk_len = 0;
  };
  for (char ch : word) {
    int32_t id = byte_ids_[uint8_t(ch)];
    if (id >= 0) {
      flush_unk();
      syms.push_back({id, 0, 0, 1});
    } else if (unk_id_ >= 0) {
      if (!(unk_len && fuse_unk_)) flush_unk();
      unk_len += 1;
    }
  }
  flush_unk();
  int32_t n = int32_t(syms.size());
  int32_t rank, merged;
  for (int32_t i = 0; i < n; ++i) {
    syms[i].prev = i - 1;
    syms[i].next = i + 1 < n ? i + 1 : -1;
    if (i + 1 < n && merges_.find(syms[i].id, syms[i + 1].id, rank, merged))
      heap.push_back({rank, i, merged});
  }
  std::make_heap(heap.begin(), heap.end(), later);
  auto push = [&](Candidate c) {
    heap.push_back(c);
    std::push_heap(heap.begin(), heap.end(), later);
  };
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), later);
    Candidate top = heap.back();
    heap.pop_back();
    Symbol& cur = syms[top.pos];
    if (cur.len == 0 || cur.next == -1) continue;
    Symbol right = syms[cur.next];
    // A stale entry: the pair at this position changed since it was queued.
    if (!merges_.find(cur.id, right.id, rank, merged) || merged != top.merged) continue;
    syms[cur.next].len = 0;
    cur.id = top.merged;
    cur.len += right.len;
    cur.next = right.next;
    if (right.next >= 0) syms[right.next].prev = top.pos;
    if (cur.prev >= 0 && merges_.find(syms[cur.prev].id, cur.id, rank, merged))
      push({rank, cur.prev, merged});
    if (cur.next >= 0 && merges_.find(cur.id, syms[cur.next].id, rank, merged))
      push({rank, top.pos, merged});
  }
  for (const Symbol& s : syms)
    if (s.len) out.push_back(s.id);
}

}  // namespace hyla::io::bpe
