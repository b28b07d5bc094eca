// Attention-bypass layer scores (pipeline.md §1, methods.md §3.6 and §5.2): zero one
// layer's attention output in the teacher (the residual stream passes through) and
// measure what is lost. Two different "AR" scores, named apart:
//   bypass-ppl     Taylor-Calibrate's "AR": perplexity with layer ℓ bypassed; the score
//                  is the rise in mean NLL, ln(ppl_ℓ / ppl), in nats per token.
//   bypass-recall  the KL-guided code's "AR": drop in synthetic MQAR accuracy,
//                  acc − acc_ℓ.
// Higher scores keep attention.
#pragma once
#include <nlohmann/json.hpp>

#include <vector>

#include "hyla/data/synthetic_mqar.h"
#include "hyla/model/decoder.h"

namespace hyla::distill {

struct BypassScores {
  std::vector<double> scores;  // one per layer
  nlohmann::json extra;        // baseline and per-layer raw measurements
};

// ids: [N] int64 calibration tokens (training text), scored in windows of `ctx`.
BypassScores bypass_ppl_scores(model::CausalLM& teacher, const torch::Tensor& ids, int64_t ctx, int64_t batch = 4);

BypassScores bypass_recall_scores(model::CausalLM& teacher, const data::MqarConfig& mqar, int64_t samples,
                                  uint64_t seed);

}  // namespace hyla::distill
