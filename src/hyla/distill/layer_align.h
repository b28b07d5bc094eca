// Taylor-Calibrate Phase 2 (methods.md §3.4): a short alignment of one converted layer
// to the teacher's attention output, with the teacher's input (teacher-forced), so
// every layer learns on its own. Loss MSE(mixer(x), y), AdamW, full batch every step,
// gradient-norm clip; the parameters of the step with the lowest loss are kept — the
// true best, the initial weights included (the reference keeps the weights after the
// best step's update, pipeline.md "What the reference code does differently").
#pragma once
#include <torch/torch.h>

#include <string>

#include "hyla/distill/convert.h"
#include "hyla/model/mixer.h"

namespace hyla {
class ProgressBar;
}

namespace hyla::distill {

struct AlignResult {
  double initial_loss = 0, best_loss = 0, final_loss = 0;
  int64_t best_step = 0;  // 0 = the initial weights; s = after s updates
};

// Which learning rate a mixer parameter gets (§3.4): q/k/v projections lr_qkv; the output
// projection and output norm are frozen (0); everything else lr_new.
double align_lr(const std::string& param_name, const TaylorOptions& opt);

// x [B, T, d] teacher-forced normalised input, y [B, T, d] teacher attention output.
// `bar` (may be null) advances one unit per step; `label` prefixes its metrics.
AlignResult align_layer(model::MixerImpl& mixer, const torch::Tensor& x, const torch::Tensor& y,
                        const TaylorOptions& opt, ProgressBar* bar, int64_t bar_offset, const std::string& label);

}  // namespace hyla::distill
