#include "hyla/train/bpe_trainer.h"

#include <algorithm>
#include <unordered_map>

#include "hyla/util/error.h"
#include "hyla/util/log.h"
#include "hyla/util/progress.h"

namespace hyla::train {
namespace {
using namespace io::bpe;

uint64_t pair_key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }
int32_t key_left(uint64_t k) { return int32_t(k >> 32); }
int32_t key_right(uint64_t k) { return int32_t(uint32_t(k)); }

struct Word {
  std::vector<int32_t> syms;
  int64_t count;
};

struct Entry {
  int64_t count;
  uint64_t pair;
};
// Heap order: the highest count on top; among equal counts the smallest (left, right).
bool lower_priority(const Entry& x, const Entry& y) {
  return x.count != y.count ? x.count < y.count : x.pair > y.pair;
}

// Pair counts over all words, where each pair occurs, and a lazily updated max-heap.
struct PairStats {
  std::unordered_map<uint64_t, int64_t> count;
  std::unordered_map<uint64_t, std::vector<int32_t>> where;  // word indices, may repeat
  std::vector<Entry> heap;
  std::vector<uint64_t> grown;  // pairs whose count rose in the current round

  void add(int32_t a, int32_t b, int64_t delta, int32_t word) {
    uint64_t k = pair_key(a, b);
    count[k] += delta;
    if (delta > 0) {
      auto& w = where[k];
      if (w.empty() || w.back() != word) w.push_back(word);
      grown.push_back(k);
    }
  }
  void push(uint64_t k) {
    heap.push_back({count[k], k});
    std::push_heap(heap.begin(), heap.end(), lower_priority);
  }
  // The most frequent pair (count > 0), or false when none is left.
  bool pop(Entry& best) {
    while (!heap.empty()) {
      std::pop_heap(heap.begin(), heap.end(), lower_priority);
      Entry e = heap.back();
      heap.pop_back();
      int64_t now = count[e.pair];
      if (now == e.count && now > 0) return best = e, true;
      if (now > 0 && now < e.count) push(e.pair);  // stale: requeue with today's count
    }
    return false;
  }
};

// Replaces each non-overlapping (left, right), scanning left to right, by `merged`,
// and reports the pair-count changes (Sennrich et al.'s update, per occurrence).
void merge_in_word(Word& w, int32_t word_index, int32_t left, int32_t right, int32_t merged,
                   PairStats& stats, std::vector<int32_t>& out) {
  const auto& s = w.syms;
  int64_t c = w.count;
  out.clear();
  for (size_t i = 0; i < s.size();) {
    if (i + 1 < s.size() && s[i] == left && s[i + 1] == right) {
      stats.add(left, right, -c, word_index);
      if (!out.empty()) {  // the left neighbour may itself be a fresh `merged`
        stats.add(out.back(), left, -c, word_index);
        stats.add(out.back(), merged, c, word_index);
      }
      if (i + 2 < s.size()) {
        stats.add(right, s[i + 2], -c, word_index);
        stats.add(merged, s[i + 2], c, word_index);
      }
      out.push_back(merged);
      i += 2;
    } else {
      out.push_back(s[i]);
      i += 1;
    }
  }
  w.syms.swap(out);
}

}  // namespace

BpeTrainer::BpeTrainer(BpeTrainOptions options)
    : opt_(std::move(options)), pre_(style_pre_tokenizer(opt_.style)),
      normalizer_(style_normalizer(opt_.style)) {
  std::vector<AddedToken> specials;
  for (const auto& s : opt_.special_tokens) {
    HYLA_CHECK(!s.empty() && is_valid_utf8(s), "special token `{}` must be non-empty UTF-8", s);
    AddedToken t;
    t.content = s, t.id = int32_t(specials.size()), t.normalized = false, t.special = true;
    specials.push_back(t);
  }
  specials_.build(specials, nullptr);
  int64_t base = int64_t(opt_.special_tokens.size()) + 256;
  HYLA_CHECK(opt_.vocab_size >= base,
             "--vocab-size {} is below the {} special tokens + 256 bytes", opt_.vocab_size,
             opt_.special_tokens.size());
}

void BpeTrainer::feed(std::string_view text) {
  struct Counter final : WordSink {
    StringMap<int64_t>& counts;
    explicit Counter(StringMap<int64_t>& c) : counts(c) {}
    void word(std::string_view w) override {
      auto it = counts.find(w);
      if (it != counts.end())
        ++it->second;
      else
        counts.emplace(std::string(w), 1);
    }
  } counter(counts_);
  std::string repaired, normalized;
  if (!is_valid_utf8(text)) text = repaired = utf8_lossy(text);
  std::vector<TextPiece> pieces;
  specials_.split(text, false, pieces);
  for (const TextPiece& p : pieces) {
    if (p.id >= 0) continue;
    std::string_view piece = text.substr(p.start, p.end - p.start);
    if (normalizer_) {
      normalizer_->apply(piece, normalized);
      piece = normalized;
    }
    pre_.split(piece, counter);
  }
}

BpeVocab BpeTrainer::train() const {
  BpeVocab v;
  for (const auto& s : opt_.special_tokens) {
    v.special_ids.push_back(int32_t(v.tokens.size()));
    v.tokens.push_back(s);
  }
  const int32_t first_byte = int32_t(v.tokens.size());
  StringMap<int32_t> id_of;  // token bytes -> id (merges may rebuild an existing token)
  for (int b = 0; b < 256; ++b) {
    v.tokens.push_back(std::string(1, char(b)));
    id_of.emplace(v.tokens.back(), int32_t(v.tokens.size() - 1));
  }
  // Words in byte order, so ids and tie-breaks never depend on hash iteration order.
  std::vector<std::pair<std::string_view, int64_t>> sorted(counts_.begin(), counts_.end());
  std::sort(sorted.begin(), sorted.end());
  std::vector<Word> words(sorted.size());
  PairStats stats;
  for (size_t wi = 0; wi < sorted.size(); ++wi) {
    Word& w = words[wi];
    w.count = sorted[wi].second;
    for (char ch : sorted[wi].first) w.syms.push_back(first_byte + uint8_t(ch));
    for (size_t i = 0; i + 1 < w.syms.size(); ++i)
      stats.add(w.syms[i], w.syms[i + 1], w.count, int32_t(wi));
  }
  for (auto& [k, c] : stats.count) stats.heap.push_back({c, k});
  std::make_heap(stats.heap.begin(), stats.heap.end(), lower_priority);
  stats.grown.clear();

  int64_t target = opt_.vocab_size - int64_t(v.tokens.size());
  ProgressBar bar("bpe merges", target, "merges");
  std::vector<int32_t> scratch;
  Entry best;
  while (int64_t(v.tokens.size()) < opt_.vocab_size && stats.pop(best)) {
    if (best.count < opt_.min_frequency) break;
    int32_t left = key_left(best.pair), right = key_right(best.pair);
    std::string bytes = v.tokens[size_t(left)] + v.tokens[size_t(right)];
    auto [it, fresh] = id_of.try_emplace(bytes, int32_t(v.tokens.size()));
    if (fresh) v.tokens.push_back(bytes);
    v.merges.emplace_back(left, right);
    std::vector<int32_t> touched = std::move(stats.where[best.pair]);
    stats.where.erase(best.pair);
    std::sort(touched.begin(), touched.end());
    touched.erase(std::unique(touched.begin(), touched.end()), touched.end());
    for (int32_t wi : touched)
      merge_in_word(words[size_t(wi)], wi, left, right, it->second, stats, scratch);
    std::sort(stats.grown.begin(), stats.grown.end());
    stats.grown.erase(std::unique(stats.grown.begin(), stats.grown.end()), stats.grown.end());
    for (uint64_t k : stats.grown)
      if (stats.count[k] > 0) stats.push(k);
    stats.grown.clear();
    bar.update(int64_t(v.merges.size()));
  }
  bar.finish();
  if (int64_t(v.tokens.size()) < opt_.vocab_size)
    log::info("bpe: stopped at {} tokens (no pair occurs {} times or more)", v.tokens.size(),
              opt_.min_frequency);
  return v;
}

}  // namespace hyla::train
