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

// Block-paged K/V for a batch of sequences at different positions (the serving engine,
// as in vLLM's PagedAttention): an attention layer's pool `LayerCache::k/v` is
// [num_blocks * block_size, H_kv, head_dim] and a sequence's token t lives in pool row
// block_table[t / block_size] * block_size + t % block_size. The indices are built by
// the engine once per step and shared by every attention layer.
struct PagedKV {
  torch::Tensor write_rows;  // [B * T] int64: pool rows of this chunk's new K/V (row-major B, T)
  torch::Tensor read_rows;   // [B, L] int64: pool rows of each row's positions 0..L-1
                             // (past a row's length: any row, masked by position)
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
