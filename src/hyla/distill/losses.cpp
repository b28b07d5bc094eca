#include "hyla/distill/losses.h"

#include <cmath>

#include "hyla/util/error.h"

namespace hyla::distill {
namespace F = torch::nn::functional;

namespace {

// Mean of a per-position quantity [B, T] over the positions the mask counts.
torch::Tensor masked_mean(const torch::Tensor& per_position, const torch::Tensor& mask) {
  auto m = mask.to(per_position.device(), torch::kFloat32);
  return (per_position * m).sum() / m.sum().clamp_min(1.0);
}

}  // namespace

torch::Tensor alignment_loss(const torch::Tensor& student, const torch::Tensor& teacher, const torch::Tensor& mask,
                             AlignLoss kind) {
  HYLA_CHECK(student.sizes() == teacher.sizes() && student.dim() == 3,
             "alignment loss: student {} and teacher {} outputs must both be [B, T, d]", student.sizes(),
             teacher.sizes());
  auto s = student.to(torch::kFloat32), t = teacher.to(torch::kFloat32);
  auto diff = s - t;
  const double d = double(s.size(-1));
  switch (kind) {
    case AlignLoss::L2:  // methods.md §1.3: ‖y − ŷ‖₂ / √d per token
      return masked_mean(diff.pow(2).sum(-1).sqrt(), mask) / std::sqrt(d);
    case AlignLoss::MSE:
      return masked_mean(diff.pow(2).mean(-1), mask);
    case AlignLoss::NMSE:
      return masked_mean(diff.pow(2).mean(-1), mask) / masked_mean(t.pow(2).mean(-1), mask).clamp_min(1e-12);
  }
  return {};
}

torch::Tensor kl_loss(const torch::Tensor& teacher_logits, const torch::Tensor& student_logits,
                      const torch::Tensor& mask, double temperature) {
  HYLA_CHECK(teacher_logits.sizes() == student_logits.sizes(), "KL: teacher logits {} and student logits {} differ",
             teacher_logits.sizes(), student_logits.sizes());
  auto lp = F::log_softmax(teacher_logits.to(torch::kFloat32) / temperature, F::LogSoftmaxFuncOptions(-1));
  auto lq = F::log_softmax(student_logits.to(torch::kFloat32) / temperature, F::LogSoftmaxFuncOptions(-1));
  auto per_position = (lp.exp() * (lp - lq)).sum(-1);
  return masked_mean(per_position, mask) * (temperature * temperature);
}

TopK teacher_top_k(const torch::Tensor& teacher_logits, int64_t k, double temperature) {
  HYLA_CHECK(k > 0 && k <= teacher_logits.size(-1), "top_k = {} must be in [1, vocabulary size {}]", k,
             teacher_logits.size(-1));
  auto [vals, idx] = (teacher_logits.to(torch::kFloat32) / temperature).topk(k, -1);
  // Renormalised over the kept k: p̃ = softmax over the top-k scaled logits.
  return {idx, F::log_softmax(vals, F::LogSoftmaxFuncOptions(-1))};
}

torch::Tensor top_k_kl_loss(const TopK& teacher, const torch::Tensor& student_logits, const torch::Tensor& mask,
                            double temperature) {
  auto lq = F::log_softmax(student_logits.to(torch::kFloat32) / temperature, F::LogSoftmaxFuncOptions(-1));
  auto idx = teacher.indices.to(lq.device(), torch::kInt64);
  auto lp = teacher.log_probs.to(lq.device(), torch::kFloat32);
  auto lq_k = lq.gather(-1, idx);
  auto per_position = (lp.exp() * (lp - lq_k)).sum(-1);
  return masked_mean(per_position, mask) * (temperature * temperature);
}

torch::Tensor ce_loss(const torch::Tensor& logits, const torch::Tensor& target, const torch::Tensor& mask) {
  auto V = logits.size(-1);
  auto ce = F::cross_entropy(logits.reshape({-1, V}).to(torch::kFloat32), target.to(logits.device()).reshape({-1}),
                             F::CrossEntropyFuncOptions().reduction(torch::kNone));
  return masked_mean(ce.view(target.sizes()), mask);
}

torch::Tensor gate_similarity(const torch::Tensor& log_gate1, const torch::Tensor& log_gate2,
                              const torch::Tensor& mask) {
  auto g1 = log_gate1.to(torch::kFloat32).exp(), g2 = log_gate2.to(torch::kFloat32).exp();
  auto cos = F::cosine_similarity(g1, g2, F::CosineSimilarityFuncOptions().dim(-1).eps(1e-8));  // [B, T, H]
  return masked_mean(cos.mean(-1), mask);
}

}  // namespace hyla::distill
