// Dual-state linear attention (DSLA; dsla.md, methods.md §4.1): two GLA states over the
// same keys and values, each with its own per-key-dim gate, mixed by a learned softmax.
// Parameter names follow the reference (utnslab/DSLA-Serve src/layer.py): q_proj, k_proj,
// v_proj, o_proj, gk_proj (+bias), gk_proj2 (+bias), alpha_list [2].
//
// Cache (LayerCache::state): "S1", "S2" [N, H, dk, dv] float32.
#pragma once
#include <torch/torch.h>

#include "hyla/model/mixer.h"
#include "hyla/model/mixers/common.h"
#include "hyla/model/rope.h"

namespace hyla::model {

class DualStateLinearAttentionImpl : public MixerImpl {
 public:
  explicit DualStateLinearAttentionImpl(const MixerConfig& c);
  torch::Tensor forward(const torch::Tensor& x, const MixerContext& ctx) override;
  std::string kind() const override { return "dsla"; }
  int64_t state_bytes(int64_t elem_size) const override;
  const MixerConfig& config() const { return c_; }
  // The mixed read-out w_1 o_1 + w_2 o_2, [B, T, H, dv], before W_o.
  torch::Tensor mixed_output(const torch::Tensor& x, const MixerContext& ctx);

  // The two log gates for x, each [B, T, H, dk]: max(logsigmoid(W x + b) / 16, −50).
  std::pair<torch::Tensor, torch::Tensor> gates(const torch::Tensor& x) const;

  torch::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr},
      gk_proj{nullptr}, gk_proj2{nullptr};
  torch::Tensor alpha_list;

 private:
  MixerConfig c_;
  Rotary rotary_;
};
TORCH_MODULE(DualStateLinearAttention);

}  // namespace hyla::model
