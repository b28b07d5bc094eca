// Learning-rate schedule: linear warm-up to lr, then cosine (or linear) decay to
// min_lr at the last step, or constant.
#pragma once
#include "hyla/train/recipe.h"

namespace hyla::train {
double learning_rate(const OptimConfig& o, int64_t step);  // step is 0-based
}
