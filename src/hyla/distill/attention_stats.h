// The teacher's attention made explicit for calibration (methods.md §3.3–3.4): per layer
// the teacher-forced input, the attention probabilities P [B, Hq, T, T], the per-head
// context P·V and the attention output W_o(P·V). Computed here, not in the model, so the
// model's SDPA path stays fast; only calibration pays for the T×T matrices.
#pragma once
#include <torch/torch.h>

#include <vector>

#include "hyla/model/attention.h"
#include "hyla/model/config.h"
#include "hyla/model/decoder.h"

namespace hyla::distill {

// x_ℓ = input_layernorm_ℓ(h_ℓ) for every layer ℓ of the teacher on `ids` [B, T]
// (h_ℓ = the residual stream entering layer ℓ). No gradients.
std::vector<torch::Tensor> teacher_layer_inputs(model::CausalLM& teacher, const torch::Tensor& ids);

struct TeacherAttention {
  torch::Tensor probs;    // [B, Hq, T, T]: softmax(q kᵀ/√Dh + mask), rows sum to 1
  torch::Tensor values;   // [B, T, Hq, Dh]: W_v x + b_v, GQA-expanded (head j uses kv head j/G)
  torch::Tensor context;  // [B, T, Hq, Dh]: P·V per head
  torch::Tensor output;   // [B, T, d]: W_o context + b_o (the attention sublayer's output)
};

// Layer `layer` of the teacher (whose mixer is `attn`) on its normalised input x
// [B, T, d]: q/k norms, RoPE (unless NoPE), causal (and sliding-window) mask, exactly as
// AttentionImpl::forward computes it, but with the probabilities kept. float64 in,
// float64 out; otherwise float32.
TeacherAttention teacher_attention(const model::AttentionImpl& attn, const model::ModelConfig& c, int64_t layer,
                                   const torch::Tensor& x);

// Per-head statistics of attention probabilities, accumulated over batches (§3.3 a, b;
// §3.9 ii). All float64 sums over (b, i) query rows.
class HeadStats {
 public:
  void add(const torch::Tensor& probs);  // [B, H, T, T]
  // d̄_h = mean_{b,i} Σ_j P_ij D_ij, D_ij = max(i − j, 0.5) for j ≤ i (self = 0.5). [H]
  torch::Tensor mean_distance() const;
  // H̄_h = mean_{b,i} −Σ_{j≤i} P_ij ln max(P_ij, 1e−10). [H]
  torch::Tensor entropy() const;
  // §3.9 (ii): per-step log decay τ_h fitted by least squares to ln m_h(δ) ≈ a − τ δ,
  // m_h(δ) = mean attention mass at distance δ, over δ = 0 .. max_distance with m > 0,
  // each δ weighted by the number of query rows that reach it. [H]
  torch::Tensor fitted_log_decay(int64_t max_distance) const;
  int64_t rows() const { return rows_; }

 private:
  torch::Tensor distance_sum_, entropy_sum_, mass_by_distance_, rows_by_distance_;
  int64_t rows_ = 0;
};

}  // namespace hyla::distill
