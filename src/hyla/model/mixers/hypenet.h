// HypeNet's RNN mixer: Lightning attention (hypenet.md; methods.md §6.1; HALO's
// halo/modeling/hypenet/lightning_attn.py). Per head h, with a fixed ALiBi-slope decay
// λ_h = exp(−slope_h): S_t = λ_h S_{t−1} + k_t v_tᵀ, o_t = Dh^(−1/2) S_tᵀ q_t, after
// per-head RMSNorm and RoPE on q and k and GQA expansion of k and v; then one RMSNorm
// over all heads and a sigmoid output gate. Parameter names are HALO's: q_proj, k_proj,
// v_proj, o_proj, z_proj, q_norm, k_norm, o_norm.
//
// Cache (LayerCache::state): "S" [N, H, Dh, Dh] float32.
#pragma once
#include <torch/torch.h>

#include "hyla/model/mixer.h"
#include "hyla/model/mixers/common.h"
#include "hyla/model/rope.h"

namespace hyla::model {

// ALiBi slopes for n heads: (2^(−8/n))^(i+1) for a power of two; otherwise the slopes of
// the next lower power of two followed by every other slope of twice that (Press et al.).
std::vector<double> alibi_slopes(int64_t n);

// Repeats each of the n_kv head blocks (rows of a [n_kv·Dh, d] projection) n_heads/n_kv
// times in place — HALO's expand_kv_proj, turning a GQA teacher's W_k / W_v into MHA.
torch::Tensor expand_kv_rows(const torch::Tensor& w, int64_t n_kv, int64_t n_heads);

class LightningAttentionImpl : public MixerImpl {
 public:
  explicit LightningAttentionImpl(const MixerConfig& c);
  torch::Tensor forward(const torch::Tensor& x, const MixerContext& ctx) override;
  std::string kind() const override { return "hypenet"; }
  int64_t state_bytes(int64_t elem_size) const override;
  const MixerConfig& config() const { return c_; }
  // The read-out o_t = Dh^(−1/2) S_tᵀ q_t, [B, T, H, Dh] (compute dtype), before the
  // output norm, gate and W_o.
  torch::Tensor recurrent_output(const torch::Tensor& x, const MixerContext& ctx);
  // log decay per head, −slope_h, float32 [H].
  const torch::Tensor& log_decay() const { return log_decay_; }

  torch::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr},
      z_proj{nullptr};
  NormWeight q_norm{nullptr}, k_norm{nullptr}, o_norm{nullptr};

 private:
  MixerConfig c_;
  Rotary rotary_;
  torch::Tensor log_decay_, decay_on_device_;
};
TORCH_MODULE(LightningAttention);

}  // namespace hyla::model
