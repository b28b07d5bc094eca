// The loss a distillation stage minimises on one batch (pipeline.md §4–§5):
//   attention_align  teacher-forced (methods.md §1.4): one teacher forward gives every
//                    layer's normalised input and attention output; each converted mixer
//                    of the student gets the teacher's input and is aligned to its output.
//   hidden_align     the student runs freely; its layer outputs are aligned to the teacher's.
//   kl               τ²·KL(teacher ‖ student) on the logits (+ ce_weight·CE), the teacher
//                    run alongside or its top-k read from the on-disk cache.
//   ce               next-token cross-entropy.
//   long_context     ce or kl at its own (longer) seq_len.
//   chained          kl (+ ce) + diversity_weight · sim(G1, G2) of the link's DSLA layer.
#pragma once
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include "hyla/data/batch_sampler.h"
#include "hyla/distill/distill_recipe.h"
#include "hyla/distill/teacher_cache.h"
#include "hyla/model/decoder.h"

namespace hyla::distill {

struct StageLoss {
  torch::Tensor loss;                             // what backward() runs on
  nlohmann::json extra = nlohmann::json::object();  // logged beside it (e.g. kl_full, ce)
};

// Layers whose mixer kind differs from the teacher's: the converted ones.
std::vector<int64_t> converted_layers(const model::CausalLM& student, const model::CausalLM& teacher);

class StageObjective {
 public:
  // `cache` may be null (no top-k cache); `diversity_layers`: DSLA layers whose gate
  // similarity is added (chained).
  StageObjective(const StageConfig& st, model::CausalLM teacher, torch::Device device,
                 TeacherCache* cache = nullptr, std::vector<int64_t> diversity_layers = {});
  StageLoss operator()(model::CausalLM& student, const data::TokenBatch& b, int rank);

 private:
  StageLoss attention_align(model::CausalLM& student, const data::TokenBatch& b);
  StageLoss hidden_align(model::CausalLM& student, const data::TokenBatch& b);
  StageLoss logits_loss(model::CausalLM& student, const data::TokenBatch& b, int rank);

  const StageConfig& st_;
  model::CausalLM teacher_;
  torch::Device device_;
  TeacherCache* cache_;
  std::vector<int64_t> diversity_layers_;
};

}  // namespace hyla::distill
