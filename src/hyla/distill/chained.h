// DSLA-Serve's chained fine-tuning (dsla.md "Chained fine-tuning", methods.md §4.5): the
// stage's layers are converted one at a time in the given order. Link k swaps layer ℓ_k's
// linear mixer in (its initial weights are the converted student's), with ℓ_1..ℓ_{k−1}
// already converted and trained at earlier_lr_scale × LR (0: frozen), and trains against
// the teacher (KL, + ce_weight·CE, + diversity_weight·sim(G1, G2) for DSLA). Every link
// is a resumable sub-stage:
//   <dir>/link-KK-layer-LL/   full student with ℓ_1..ℓ_k converted (HF checkpoint) and
//                             replacement.safetensors: the mixers of ℓ_1..ℓ_k as trained in
//                             link k, what a server loads to run with those k layers swapped
// and <dir> itself holds the student after the last link.
#pragma once
#include <filesystem>
#include <vector>

#include "hyla/distill/stage_runner.h"

namespace hyla::distill {

// Checks `order` against the student's converted layers (before anything trains).
void check_chain_order(const std::vector<int64_t>& order, const std::vector<int64_t>& converted,
                       const std::string& label);

StageResult run_chained(model::CausalLM& student, const StageConfig& st, const StageEnv& env,
                        const std::filesystem::path& dir);

}  // namespace hyla::distill
