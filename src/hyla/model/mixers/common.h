// What the linear mixers share: parameter holders named as fla / HF name them, input
// checks, projections with the model init, and positions for RoPE.
#pragma once
#include <torch/torch.h>

#include <string>

#include "hyla/model/mixer.h"
#include "hyla/model/mixers/mixer_config.h"

namespace hyla::model {

// fla's ShortConvolution parameters: a depthwise Conv1d weight [channels, 1, W].
class ShortConvImpl : public torch::nn::Module {
 public:
  ShortConvImpl(int64_t channels, int64_t kernel, bool bias);
  torch::Tensor weight, bias;
};
TORCH_MODULE(ShortConv);

// A norm's learnable scale, registered as "<name>.weight".
class NormWeightImpl : public torch::nn::Module {
 public:
  explicit NormWeightImpl(int64_t n);
  torch::Tensor weight;
};
TORCH_MODULE(NormWeight);

// An nn::Linear without bias (or with), weight ~ N(0, std).
torch::nn::Linear make_projection(int64_t in, int64_t out, bool bias, double std);

// Common checks of a mixer's input: x [B, T, hidden]; packed batches have B == 1.
void check_mixer_input(const torch::Tensor& x, const MixerContext& ctx, int64_t hidden,
                       const std::string& name);

// Positions for RoPE: ctx.positions if set ([T], or [B, T] per row), else a count
// continuing from the cache.
torch::Tensor mixer_positions(const torch::Tensor& x, const MixerContext& ctx);

// Checks the head counts and dimensions a mixer of `kind` needs; errors name the layer.
void validate_mixer_config(const MixerConfig& c, const std::string& kind);

// The cached tensor `key` of this layer, or undefined (no cache, or nothing cached yet).
torch::Tensor cached_state(const MixerContext& ctx, const std::string& key);

// Stores this layer's new state `key`. A dynamic cache takes the new tensor; a static one
// (ctx.static_cache: CUDA-graph decoding) keeps its buffer and copies the value in, so a
// captured step writes where the next replay reads.
void store_state(const MixerContext& ctx, const std::string& key, const torch::Tensor& value);

}  // namespace hyla::model
