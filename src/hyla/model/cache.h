// Decode caches. Attention layers keep K/V for every past token; linear mixers keep a
// constant-size recurrent state (and short-conv tails). One `LayerCache` per layer,
// holding whichever its mixer needs, so a hybrid model's cache is just a vector.
#pragma once
#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

namespace hyla::model {

struct LayerCache {
  // Softmax attention: [B, H_kv, capacity, head_dim]; `length` positions are valid.
  torch::Tensor k, v;
  int64_t length = 0;
  // Linear mixers: named state tensors, e.g. "S" [B, HV, dk, dv] (float32),
  // "conv_q" [B, channels, kernel-1]. Empty until the first forward fills them.
  std::map<std::string, torch::Tensor> state;

  int64_t bytes() const;
};

struct ModelCache {
  std::vector<LayerCache> layers;
  int64_t position = 0;  // tokens consumed so far (same for every row of the batch)
  explicit ModelCache(size_t n_layers = 0) : layers(n_layers) {}
  int64_t bytes() const;
  void reset();
  // Copies of every layer's recurrent state, and putting them back in place (same
  // buffers): CUDA-graph warm-up runs a decode step that must leave no trace.
  std::vector<std::map<std::string, torch::Tensor>> snapshot_states() const;
  void restore_states(const std::vector<std::map<std::string, torch::Tensor>>& saved);
};

}  // namespace hyla::model
