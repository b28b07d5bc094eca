// Distillation losses (methods.md §1.3, dsla.md). All take a token mask [B, T] (1 where a
// position counts) and average over counted positions; all compute in float32.
#pragma once
#include <torch/torch.h>

#include "hyla/distill/distill_recipe.h"

namespace hyla::distill {

// Alignment of a student output ŷ to a teacher output y, both [B, T, d]:
//   l2:   mean_{b,t} ‖y − ŷ‖₂ / √d           (RADLADS; the norm, not its square)
//   mse:  mean_{b,t,d} (y − ŷ)²               (HALO)
//   nmse: mse / mean_{b,t,d} y²               (scale-free MSE, proposed)
torch::Tensor alignment_loss(const torch::Tensor& student, const torch::Tensor& teacher, const torch::Tensor& mask,
                             AlignLoss kind);

// Forward KL(teacher ‖ student) at temperature τ, times τ² (Hinton's scaling, so the
// gradient's size does not depend on τ):
//   τ² · mean_{positions} Σ_v p_v (log p_v − log q_v),  p = softmax(z_t/τ), q = softmax(z_s/τ).
torch::Tensor kl_loss(const torch::Tensor& teacher_logits, const torch::Tensor& student_logits,
                      const torch::Tensor& mask, double temperature = 1.0);

// The teacher's top-k at temperature τ: indices [B, T, k] (int64) and log-probabilities
// renormalised over those k (float32), what the on-disk cache holds.
struct TopK {
  torch::Tensor indices, log_probs;
};
TopK teacher_top_k(const torch::Tensor& teacher_logits, int64_t k, double temperature = 1.0);
// KL(p̃ ‖ q) with p̃ the renormalised top-k teacher distribution (zero elsewhere) and q the
// student's full softmax at τ, times τ² (**proposed**, pipeline.md §5).
torch::Tensor top_k_kl_loss(const TopK& teacher, const torch::Tensor& student_logits, const torch::Tensor& mask,
                            double temperature = 1.0);

// Masked next-token cross-entropy (mean over counted positions).
torch::Tensor ce_loss(const torch::Tensor& logits, const torch::Tensor& target, const torch::Tensor& mask);

// DSLA's diversity term (dsla.md, methods.md §4.2): the cosine similarity over the key
// dimension of the two gates' values exp(gk1), exp(gk2), each [B, T, H, dk], averaged over
// (b, t, h) counted by `mask`. Minimising it pushes the two states apart.
torch::Tensor gate_similarity(const torch::Tensor& log_gate1, const torch::Tensor& log_gate2,
                              const torch::Tensor& mask);

}  // namespace hyla::distill
