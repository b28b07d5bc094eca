// A token mixer: the part of a decoder layer that moves information between positions.
// Softmax attention and every linear-attention RNN implement this one interface, so the
// decoder (and conversion, distillation, serving) treats them alike.
#pragma once
#include <torch/torch.h>

#include <optional>
#include <string>

#include "hyla/model/cache.h"

namespace hyla::model {

struct MixerContext {
  // Absolute positions of the tokens in `x`, [T] (same for every row) — for RoPE — or
  // [B, T] when the rows sit at different positions (serving a batch of sequences).
  torch::Tensor positions;
  // Packed variable-length batch: x is [1, total, d] and sequence i spans
  // cu_seqlens[i]..cu_seqlens[i+1] (int64, on x's device). Undefined when not packed.
  torch::Tensor cu_seqlens;
  // Decode cache of this layer, or nullptr for a stateless full-sequence forward.
  LayerCache* cache = nullptr;
  // Static-shape decoding (CUDA graphs): attention caches are preallocated to their
  // full capacity, new K/V are written at `positions` and attention runs over the whole
  // buffer under a mask, so no shape depends on how many tokens were seen. Linear
  // mixers must then update their state tensors in place.
  bool static_cache = false;
  // cos/sin for `positions`, computed by the first layer that needs them and reused by
  // the others (all attention layers share one rotary setup).
  mutable torch::Tensor rope_cos, rope_sin;
  // Block-paged K/V (serving): `cache` is then the layer's shared pool and attention
  // writes and reads through these indices (see PagedKV). Linear mixers ignore it.
  const PagedKV* paged = nullptr;
};

class MixerImpl : public torch::nn::Module {
 public:
  // x: [B, T, d] (post input-norm) -> [B, T, d]. With a cache, consumes the cached
  // past and appends this chunk to it (prefill if empty, decode when T == 1).
  virtual torch::Tensor forward(const torch::Tensor& x, const MixerContext& ctx) = 0;
  // "attention", "gdn", "dsla", "hypenet", ...
  virtual std::string kind() const = 0;
  // Bytes of decode cache per token (attention) and constant bytes per sequence (RNNs),
  // for a given cache dtype element size.
  virtual int64_t cache_bytes_per_token(int64_t elem_size) const { return 0; }
  virtual int64_t state_bytes(int64_t elem_size) const { return 0; }
};
TORCH_MODULE(Mixer);

}  // namespace hyla::model
