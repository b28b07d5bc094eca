// HALO's attention-layer selection (methods.md §6.4, pipeline.md §1) with offline
// proxies. After stage 1 (every layer has an aligned linear twin, probe_student.h), the
// teacher with ONLY layer i replaced by its twin is measured for
//   R_i  retrieval: hyla's synthetic MQAR accuracy (HALO: FDA, SWDE, RULER QA), and
//   C_i  "commonsense": −KL(teacher ‖ model_i) per token on training text ("kl"), or the
//        negative mean NLL, −ln ppl ("nll") (HALO: HellaSwag/ARC acc_norm);
// both higher = better, as HALO's accuracies. Then
//   s_i = min(50, (R_max − R_i) / (C_max − C_i + 1e-10)),  R_max = max_j R_j, C_max = max_j C_j
// over the sweep (the unmodified teacher's scores are not used). A large s_i means that
// converting i costs much retrieval per unit of commonsense lost: HIGHER keeps i.
#pragma once
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <string>
#include <vector>

#include "hyla/data/synthetic_mqar.h"
#include "hyla/model/decoder.h"

namespace hyla::distill {

// The score above from per-layer R and C (same length).
std::vector<double> halo_scores(const std::vector<double>& retrieval, const std::vector<double>& commonsense);

struct HaloMeasurements {
  std::vector<double> retrieval, commonsense;
  nlohmann::json extra;
};

// commonsense: "kl" | "nll"; ids: [N] int64 training tokens in windows of `ctx`.
HaloMeasurements halo_measure(model::CausalLM& stage1, model::CausalLM& teacher, const data::MqarConfig& mqar,
                              int64_t mqar_samples, uint64_t seed, const std::string& commonsense,
                              const torch::Tensor& ids, int64_t ctx, int64_t batch);

}  // namespace hyla::distill
