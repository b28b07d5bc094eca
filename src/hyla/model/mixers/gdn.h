// Gated DeltaNet mixer, exactly as fla 0.6 defines its layer (fla/layers/gated_deltanet.py;
// gdn.md, methods.md §2). Parameter names are fla's, so weights map 1:1:
// q_proj, k_proj, v_proj, a_proj, b_proj, A_log, dt_bias, {q,k,v}_conv1d.weight,
// g_proj, o_norm.weight, o_proj.
//
// Cache (LayerCache::state): "S" [N, HV, dk, dv] float32 (K×V; fla's layer caches V×K),
// "conv_q", "conv_k", "conv_v" [N, channels, W−1] (the last W−1 projected inputs).
#pragma once
#include <torch/torch.h>

#include "hyla/model/mixer.h"
#include "hyla/model/mixers/common.h"
#include "hyla/model/rope.h"

namespace hyla::model {

class GatedDeltaNetImpl : public MixerImpl {
 public:
  explicit GatedDeltaNetImpl(const MixerConfig& c);
  torch::Tensor forward(const torch::Tensor& x, const MixerContext& ctx) override;
  std::string kind() const override { return "gdn"; }
  int64_t state_bytes(int64_t elem_size) const override;
  const MixerConfig& config() const { return c_; }
  // gdn.md steps 1–6: the recurrence's read-out o [B, T, HV, dv] before the output norm,
  // gate and W_o (Taylor-Calibrate fits value scales to it, methods.md §3.3 c). `scale`
  // multiplies q (< 0: dk^(-1/2), the layer's own).
  torch::Tensor recurrent_output(const torch::Tensor& x, const MixerContext& ctx, double scale = -1);

  torch::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, a_proj{nullptr},
      b_proj{nullptr}, g_proj{nullptr}, o_proj{nullptr};
  ShortConv q_conv1d{nullptr}, k_conv1d{nullptr}, v_conv1d{nullptr};
  NormWeight o_norm{nullptr};
  torch::Tensor A_log, dt_bias;

 private:
  // The fused CUDA decode step (kernels/gdn_decode.h) for one token on a cache, or an
  // undefined tensor when it does not apply (CPU, training, RoPE, unsupported dims).
  torch::Tensor fused_decode(const torch::Tensor& x, const MixerContext& ctx);

  MixerConfig c_;
  Rotary rotary_;
};
TORCH_MODULE(GatedDeltaNet);

}  // namespace hyla::model
