// The engine's decode memory as tensors: one K/V pool per attention layer, indexed by
// the block tables BlockPool hands out (model::PagedKV), and one state pool per linear
// layer and state tensor, [slots, ...], a row per sequence (its state slot).
//
// Both pools have one scratch entry past the budget (a block, a slot): rows that pad a
// CUDA-graph batch bucket read and write there, never a live sequence's memory.
// The prefix cache keeps contiguous copies (model::ModelCache layout); export_kv and
// import translate between the two.
#pragma once
#include <torch/torch.h>

#include <vector>

#include "hyla/model/decoder.h"
#include "hyla/serve/prefix_cache.h"

namespace hyla::serve {

class PagedCache {
 public:
  // K/V pools for the layers that are attention in `model`.
  PagedCache(model::CausalLM& model, int64_t num_blocks, int64_t block_size, int64_t num_slots);
  bool has_kv(int64_t layer) const { return kv_[layer].k.defined(); }
  model::LayerCache& kv(int64_t layer) { return kv_[layer]; }
  int64_t block_size() const { return block_size_; }
  int64_t scratch_block() const { return num_blocks_; }
  int64_t scratch_slot() const { return num_slots_; }

  // Appends to `out` the pool rows of positions [start, start + n) of a sequence.
  void rows(const std::vector<int64_t>& blocks, int64_t start, int64_t n, std::vector<int64_t>& out) const;
  // Linear layer `layer`: the states of `slots` ([n] int64) into `lc.state` (copies),
  // and `lc.state` back into the pool (allocated at the first store of each tensor).
  void gather_states(int64_t layer, const torch::Tensor& slots, model::LayerCache& lc) const;
  void scatter_states(int64_t layer, const torch::Tensor& slots, const model::LayerCache& lc);

  // Contiguous copies for the prefix cache: K/V of positions [0, len) of the layers
  // that are attention for this sequence (`linear[l]` false), and the states of its slot.
  model::ModelCache export_kv(const std::vector<int64_t>& blocks, int64_t len, const std::vector<bool>& linear) const;
  LayerStates copy_states(int64_t slot, const std::vector<bool>& linear) const;
  // Puts a restored cache (K/V of `c.position` tokens, states) into a sequence's memory.
  void import(const std::vector<int64_t>& blocks, int64_t slot, const model::ModelCache& c);
  int64_t state_bytes() const;

 private:
  torch::Tensor& state_pool(int64_t layer, const std::string& key, const torch::Tensor& like);
  int64_t num_blocks_, block_size_, num_slots_;
  std::vector<model::LayerCache> kv_;  // k/v: [(num_blocks + 1) * block_size, H_kv, D]
  std::vector<std::map<std::string, torch::Tensor>> states_;  // [num_slots + 1, ...]
};

}  // namespace hyla::serve
