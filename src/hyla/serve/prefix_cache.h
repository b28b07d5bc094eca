// Prefix caching for hybrids: a prompt that shares a prefix with an earlier one starts
// from a snapshot instead of position 0, at ANY shared length.
//
// An entry holds one prefilled prompt: its tokens, the attention layers' K/V for all of
// them (one copy), and snapshots of every linear layer's state (recurrent state and conv
// tails) at chosen positions: every `interval` tokens (where prefill chunks end) and at
// the prompt's end. A linear layer's state cannot be rewound, so a new prompt sharing s
// tokens restores the nearest snapshot at or below s and recomputes the few tokens after
// it; attention K/V are a prefix view, valid at any position. A model without linear
// layers (a teacher) restores at s itself. Entries are evicted least recently used when
// their bytes pass the budget; an entry whose prompt is a prefix of a newer one is
// dropped, since the newer one carries (shares) its snapshots.
#pragma once
#include <torch/torch.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "hyla/model/cache.h"

namespace hyla::serve {

using LayerStates = std::vector<std::map<std::string, torch::Tensor>>;  // per layer

struct PrefixEntry {
  std::vector<int64_t> tokens;
  std::vector<torch::Tensor> k, v;          // per layer [1, H, len, D]; undefined for linear layers
  std::map<int64_t, LayerStates> states;    // position -> every layer's state there
  int64_t bytes = 0;
  uint64_t last_use = 0;
};

struct PrefixHit {
  std::shared_ptr<const PrefixEntry> entry;
  int64_t position = 0;  // tokens restored (0 = miss)
  // The longest prefix shared with any entry (>= position). A hybrid whose nearest
  // snapshot lies below it takes one there while prefilling, so the next prompt with
  // this prefix (a shared system prompt) restores all of it.
  int64_t shared = 0;
};

class PrefixCache {
 public:
  // `has_linear`: whether the model has linear layers (then only snapshot positions hit).
  PrefixCache(int64_t budget_bytes, bool has_linear);
  // The longest usable prefix of `prompt`, at most `limit` tokens.
  PrefixHit lookup(const std::vector<int64_t>& prompt, int64_t limit);
  // Puts the hit into `cache` (a fresh cache): K/V as views, states as copies.
  static void restore(const PrefixHit& hit, model::ModelCache& cache);
  // Records a prefilled prompt: K/V of `cache` (which holds exactly `tokens`), the
  // snapshots taken during its prefill, and those it inherits from the entry it was
  // restored from (positions at or below where it was restored).
  // Returns the new entry (a later insert of the same sequence can inherit from it).
  std::shared_ptr<const PrefixEntry> insert(const std::vector<int64_t>& tokens, const model::ModelCache& cache,
                                            std::map<int64_t, LayerStates> states, const PrefixHit& restored_from);
  static LayerStates copy_states(const model::ModelCache& cache);

  int64_t bytes() const { return bytes_; }
  int64_t entries() const { return static_cast<int64_t>(entries_.size()); }
  int64_t evictions() const { return evictions_; }

 private:
  void evict_to_budget();
  int64_t budget_, bytes_ = 0, evictions_ = 0;
  bool has_linear_;
  uint64_t clock_ = 0;
  std::vector<std::shared_ptr<PrefixEntry>> entries_;
};

}  // namespace hyla::serve
