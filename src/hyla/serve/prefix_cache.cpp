#include "hyla/serve/prefix_cache.h"

#include <algorithm>

namespace hyla::serve {
namespace {
int64_t nbytes(const torch::Tensor& t) { return t.defined() ? t.numel() * static_cast<int64_t>(t.element_size()) : 0; }

int64_t common_prefix(const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
  size_t n = std::min(a.size(), b.size()), i = 0;
  while (i < n && a[i] == b[i]) ++i;
  return static_cast<int64_t>(i);
}

int64_t states_bytes(const LayerStates& s) {
  int64_t b = 0;
  for (auto& layer : s)
    for (auto& [_, t] : layer) b += nbytes(t);
  return b;
}
}  // namespace

PrefixCache::PrefixCache(int64_t budget_bytes, bool has_linear) : budget_(budget_bytes), has_linear_(has_linear) {}

PrefixHit PrefixCache::lookup(const std::vector<int64_t>& prompt, int64_t limit) {
  PrefixHit best;
  for (auto& e : entries_) {
    int64_t shared = std::min(common_prefix(e->tokens, prompt), limit);
    int64_t pos = 0;
    if (!has_linear_) {
      pos = shared;
    } else {
      // The nearest snapshot at or below the shared length.
      auto it = e->states.upper_bound(shared);
      if (it != e->states.begin()) pos = std::prev(it)->first;
    }
    if (pos > best.position) best = {e, pos, best.shared};
    best.shared = std::max(best.shared, shared);
  }
  if (best.entry) const_cast<PrefixEntry&>(*best.entry).last_use = ++clock_;
  return best;
}

void PrefixCache::restore(const PrefixHit& hit, model::ModelCache& cache) {
  const auto& e = *hit.entry;
  int64_t p = hit.position;
  const LayerStates* states = nullptr;
  if (auto it = e.states.find(p); it != e.states.end()) states = &it->second;
  for (size_t l = 0; l < cache.layers.size(); ++l) {
    auto& lc = cache.layers[l];
    if (e.k[l].defined()) {
      // A view of exactly p positions: the attention mixer's first append finds no spare
      // capacity and copies into a new buffer, so the entry is never written.
      lc.k = e.k[l].narrow(2, 0, p);
      lc.v = e.v[l].narrow(2, 0, p);
    } else if (states) {
      for (auto& [key, t] : (*states)[l]) lc.state[key] = t.clone();
    }
    lc.length = p;
  }
  cache.position = p;
}

LayerStates PrefixCache::copy_states(const model::ModelCache& cache) {
  LayerStates out(cache.layers.size());
  for (size_t l = 0; l < cache.layers.size(); ++l)
    for (auto& [key, t] : cache.layers[l].state) out[l][key] = t.clone();
  return out;
}

std::shared_ptr<const PrefixEntry> PrefixCache::insert(const std::vector<int64_t>& tokens,
                                                      const model::ModelCache& cache,
                                                      std::map<int64_t, LayerStates> states,
                                                      const PrefixHit& restored_from) {
  auto e = std::make_shared<PrefixEntry>();
  e->tokens = tokens;
  int64_t len = static_cast<int64_t>(tokens.size());
  for (auto& lc : cache.layers) {
    bool attention = lc.k.defined();
    e->k.push_back(attention ? lc.k.narrow(2, 0, len).clone() : torch::Tensor());
    e->v.push_back(attention ? lc.v.narrow(2, 0, len).clone() : torch::Tensor());
    e->bytes += nbytes(e->k.back()) + nbytes(e->v.back());
  }
  if (has_linear_) {
    if (restored_from.entry)
      for (auto& [pos, s] : restored_from.entry->states)
        if (pos <= restored_from.position && !states.count(pos)) states[pos] = s;  // shared, not copied
    e->states = std::move(states);
    for (auto& [_, s] : e->states) e->bytes += states_bytes(s);
  }
  e->last_use = ++clock_;
  // An older entry whose prompt this one extends adds nothing but its end snapshot.
  std::erase_if(entries_, [&](const std::shared_ptr<PrefixEntry>& old) {
    bool covered = old->tokens.size() <= tokens.size() && common_prefix(old->tokens, tokens) == (int64_t)old->tokens.size();
    if (covered) bytes_ -= old->bytes;
    return covered;
  });
  bytes_ += e->bytes;
  entries_.push_back(e);
  evict_to_budget();
  return e;
}

void PrefixCache::evict_to_budget() {
  while (bytes_ > budget_ && !entries_.empty()) {
    auto it = std::min_element(entries_.begin(), entries_.end(),
                               [](auto& a, auto& b) { return a->last_use < b->last_use; });
    bytes_ -= (*it)->bytes;
    entries_.erase(it);
    ++evictions_;
  }
}

}  // namespace hyla::serve
