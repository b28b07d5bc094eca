// KL(teacher ‖ student) per token on held-out text, and top-1 agreement (eval.md
// §Language modelling): both models read the same windows as `perplexity` (stride =
// ctx), and every scored position contributes Σ_v p_T(v) (log p_T(v) − log p_S(v)),
// accumulated in float64. Both models' NLL come out of the same pass.
#pragma once
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdint>

#include "hyla/model/decoder.h"

namespace hyla::eval {

struct KlResult {
  int64_t tokens = 0;
  double kl_sum = 0;                   // nats
  int64_t top1_agree = 0;              // argmax of student == argmax of teacher
  double student_nll_sum = 0, teacher_nll_sum = 0;
  int64_t ctx = 0;
  double mean_kl() const { return tokens ? kl_sum / double(tokens) : 0.0; }
  double top1() const { return tokens ? double(top1_agree) / double(tokens) : 0.0; }
  double student_ppl() const { return std::exp(tokens ? student_nll_sum / double(tokens) : 0.0); }
  double teacher_ppl() const { return std::exp(tokens ? teacher_nll_sum / double(tokens) : 0.0); }
  nlohmann::json to_json() const;
};

// ids: [N] int64 on the CPU; both models on the same device and with the same vocabulary.
KlResult kl_to_teacher(model::CausalLM& student, model::CausalLM& teacher, const torch::Tensor& ids, int64_t ctx,
                       int64_t batch = 4, bool progress = true);

// Per-position KL(p_T ‖ p_S) in float64 from two logit tensors [..., V]: the quantity
// kl_to_teacher sums (also used by selection probes).
torch::Tensor token_kl(const torch::Tensor& teacher_logits, const torch::Tensor& student_logits);

}  // namespace hyla::eval
