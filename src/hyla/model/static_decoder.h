// Decoding with fixed shapes, so that on CUDA one decode step is captured once as a
// CUDA graph and replayed: a batch-1 step of a small model is otherwise dominated by
// the host launching ~50 kernels a layer (transformers spends ~80 ms a step there).
//
// Attention caches are preallocated for `max_len` tokens; each step writes K/V at its
// position and attends over the full buffer under a mask (MixerContext::static_cache).
// Linear mixers' states are allocated by the prefill and then updated in place.
// On CPU, or for models whose step cannot be captured (dynamic-NTK RoPE), the same
// static path runs eagerly.
#pragma once
#include <memory>

#include "hyla/model/decoder.h"

namespace hyla::model {

class StaticDecoder {
 public:
  StaticDecoder(CausalLM model, int64_t batch, int64_t max_len, bool use_graph = true);
  ~StaticDecoder();
  // Runs the prompt [B, T] (eager) and returns logits of its last position [B, V].
  torch::Tensor prefill(const torch::Tensor& ids);
  // Feeds one token per row (ids [B]) and returns logits [B, V] (a view of a static
  // buffer when graphed: consume it before the next step).
  torch::Tensor step(const torch::Tensor& ids);
  int64_t position() const { return pos_; }
  bool graphed() const { return graph_ready_; }

 private:
  torch::Tensor run_step();  // one decode forward from the static inputs
  CausalLM model_;
  ModelCache cache_;
  int64_t batch_, max_len_, pos_ = 0;
  bool use_graph_, graph_ready_ = false;
  torch::Tensor in_ids_, in_pos_, out_logits_;  // static buffers the graph reads/writes
  struct Graph;
  std::unique_ptr<Graph> graph_;
};

}  // namespace hyla::model
