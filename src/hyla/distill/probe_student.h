// Students for the trained selection probes (pipeline.md §1; methods.md §5.2, §6.4):
//   stage 1     every layer converted (all-linear) and aligned to the teacher attention
//               output, teacher-forced (attention_align, methods.md §1.4), once;
//   restore ℓ   a copy of that student with layer ℓ back at the teacher's softmax
//               attention (the KL-guided probe's starting point);
//   replace ℓ   the teacher with only layer ℓ replaced by its stage-1 mixer (HALO's
//               per-layer sweep and the cheap KL-guided "remove" estimator).
#pragma once
#include <nlohmann/json.hpp>

#include <memory>
#include <vector>

#include "hyla/data/token_shards.h"
#include "hyla/distill/convert.h"
#include "hyla/distill/distill_recipe.h"
#include "hyla/distill/layer_bypass.h"
#include "hyla/distill/stage_runner.h"
#include "hyla/model/decoder.h"

namespace hyla::distill {

// One stage on `student` in memory against `teacher` (both on `device`), single process,
// no files; data order fixed by `seed` alone, so probes with one seed see one batch order.
StageResult run_probe_stage(model::CausalLM& student, model::CausalLM& teacher, const StageConfig& st,
                            std::shared_ptr<const data::TokenDataset> data, uint64_t seed, torch::Device device);

// Stage 1 of KL-guided / HALO: converts EVERY layer of `teacher` to `mixer` with
// `convert` (its layer choice is replaced; calib: [B, T] training tokens for inits that
// calibrate) and runs `align` (an attention_align stage) on it. `info` receives the
// stage's losses and timing. The student is on the teacher's device.
model::CausalLM stage1_all_linear(model::CausalLM& teacher, ConvertOptions convert, const std::string& mixer,
                                  const StageConfig& align, std::shared_ptr<const data::TokenDataset> data,
                                  uint64_t seed, const torch::Tensor& calib, nlohmann::json* info);

// A deep copy (same config, parameters and buffers copied) on the same device.
model::CausalLM clone_model(model::CausalLM& m);

// Puts a copy of the teacher's layer-ℓ attention into `student` (config's layer type too).
void restore_teacher_attention(model::CausalLM& student, model::CausalLM& teacher, int64_t layer);

// While alive, `stage1` computes "the teacher with only layer ℓ replaced by its stage-1
// mixer": every other layer borrows the teacher's own attention module. Exact because
// stage 1 trains only the mixers (embeddings, norms, MLPs, head are the teacher's).
class TeacherWithOneLayerReplaced {
 public:
  TeacherWithOneLayerReplaced(model::CausalLM& stage1, model::CausalLM& teacher, int64_t layer);

 private:
  std::vector<std::unique_ptr<ScopedMixerSwap>> swaps_;
};

}  // namespace hyla::distill
