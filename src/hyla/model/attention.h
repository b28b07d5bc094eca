// Softmax attention as a token mixer: GQA, RoPE (or none, for HyPE), optional QK-norm
// (Qwen3), q/k/v bias (Qwen2), sliding window, optional sigmoid output gate and query
// logit scale (HALO / HypeNet, methods.md §6.1), and a growing KV cache. Uses PyTorch's
// scaled_dot_product_attention, which picks flash / memory-efficient kernels on GPU.
#pragma once
#include "hyla/model/config.h"
#include "hyla/model/layers.h"
#include "hyla/model/mixer.h"
#include "hyla/model/rope.h"

namespace hyla::model {

class AttentionImpl : public MixerImpl {
 public:
  AttentionImpl(const ModelConfig& c, int64_t layer);
  torch::Tensor forward(const torch::Tensor& x, const MixerContext& ctx) override;
  std::string kind() const override { return window_ > 0 ? "sliding_attention" : "full_attention"; }
  int64_t cache_bytes_per_token(int64_t elem) const override { return 2 * n_kv_ * head_dim_ * elem; }

  torch::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
  torch::nn::Linear o_gate{nullptr};  // HALO's output gate: o_proj(attn ⊙ σ(o_gate(x)))
  RMSNorm q_norm{nullptr}, k_norm{nullptr};

 private:
  // Appends k, v ([B, Hkv, T, D]) to the cache, growing capacity geometrically;
  // returns views of all cached keys and values.
  std::pair<torch::Tensor, torch::Tensor> append_to_cache(LayerCache& cache, const torch::Tensor& k,
                                                          const torch::Tensor& v);
  // Block-paged K/V (MixerContext::paged): q, k, v [B, T, *, D] with RoPE applied.
  torch::Tensor forward_paged(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                              const torch::Tensor& x, const MixerContext& ctx);
  // q [B, T, H, D] times the logit scale of its positions (ModelConfig::attention_logit_scale).
  torch::Tensor scale_queries(const torch::Tensor& q, const MixerContext& ctx) const;
  // The heads' output [B, T, H*D] through the output gate (if any) and o_proj.
  torch::Tensor project_out(const torch::Tensor& heads, const torch::Tensor& x);
  int64_t layer_, n_heads_, n_kv_, head_dim_, window_;
  bool nope_;
  std::string logit_scale_;
  double logn_base_, scale_constant_;
  Rotary rotary_;
};
TORCH_MODULE(Attention);

// Boolean mask [Tq, Tk] (true = attend) for queries at absolute positions
// q_start..q_start+Tq-1 over keys 0..Tk-1, causal and optionally windowed, and with
// block-diagonal structure when `cu_seqlens` (packed sequences) is given.
torch::Tensor attention_mask(int64_t q_start, int64_t tq, int64_t tk, int64_t window,
                             const torch::Tensor& cu_seqlens, torch::Device device);

}  // namespace hyla::model
