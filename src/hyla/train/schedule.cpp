#include "hyla/train/schedule.h"

#include <cmath>
#include <numbers>

namespace hyla::train {

double learning_rate(const OptimConfig& o, int64_t step) {
  if (o.warmup_steps > 0 && step < o.warmup_steps) return o.lr * double(step + 1) / double(o.warmup_steps);
  if (o.schedule == "constant") return o.lr;
  int64_t span = std::max<int64_t>(1, o.steps - o.warmup_steps);
  double progress = std::min(1.0, double(step - o.warmup_steps) / double(span));
  double shape = o.schedule == "linear" ? 1.0 - progress : 0.5 * (1.0 + std::cos(std::numbers::pi * progress));
  return o.min_lr + (o.lr - o.min_lr) * shape;
}

}  // namespace hyla::train
