// KL-guided layer selection (pipeline.md §1, methods.md §5.2, the paper's "GA-S2"):
//   stage 1   once: every layer converted and aligned to the teacher attention output
//             (probe_student.h);
//   probe ℓ   from that student, layer ℓ restored to the teacher's softmax attention, one
//             KL stage to the teacher (every probe the same seed, so the same batches);
//             score = the probe's mean training KL; LOWER keeps ℓ as attention.
// Cheap variants (pipeline.md §1, proposed), each from the same stage-1 student:
//   remove       the teacher with only ℓ replaced by its stage-1 mixer, no training;
//                score = KL(teacher ‖ that model) on training text, the rise over the
//                teacher's own 0; HIGHER keeps ℓ;
//   short-probe  the full probe with a short token budget; lower keeps.
#pragma once
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <vector>

#include "hyla/data/token_shards.h"
#include "hyla/distill/distill_recipe.h"
#include "hyla/model/decoder.h"

namespace hyla::distill {

struct ProbeScores {
  std::vector<double> scores;  // one per layer
  nlohmann::json extra;        // per-layer raw measurements
};

// Full (or, with a short `probe`, cheap) probes: `probe` is a kl stage.
ProbeScores kl_probe_scores(model::CausalLM& stage1, model::CausalLM& teacher, const StageConfig& probe,
                            std::shared_ptr<const data::TokenDataset> data, uint64_t seed);

// The remove estimator; ids: [N] int64 training tokens in windows of `ctx`.
ProbeScores kl_remove_scores(model::CausalLM& stage1, model::CausalLM& teacher, const torch::Tensor& ids,
                             int64_t ctx, int64_t batch);

}  // namespace hyla::distill
