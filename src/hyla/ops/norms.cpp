#include "hyla/ops/norms.h"

#include "hyla/ops/recurrence.h"
#include "hyla/util/error.h"

namespace hyla::ops {

torch::Tensor l2_normalize(const torch::Tensor& x, double eps) {
  auto xc = x.to(compute_dtype(x));
  return (xc * torch::rsqrt(xc.square().sum(-1, true) + eps)).to(x.dtype());
}

torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
  HYLA_CHECK(weight.dim() == 1 && weight.size(0) == x.size(-1),
             "rms_norm: weight must be [{}], got {}", x.size(-1), shape_str(weight.sizes()));
  auto xc = x.to(compute_dtype(x));
  auto y = (xc * torch::rsqrt(xc.square().mean(-1, true) + eps)).to(x.dtype());
  return weight * y;
}

torch::Tensor rms_norm_gated(const torch::Tensor& x, const torch::Tensor& gate,
                             const torch::Tensor& weight, double eps, const std::string& activation) {
  HYLA_CHECK(gate.sizes() == x.sizes(), "rms_norm_gated: gate must have x's shape {}, got {}",
             shape_str(x.sizes()), shape_str(gate.sizes()));
  HYLA_CHECK(weight.dim() == 1 && weight.size(0) == x.size(-1),
             "rms_norm_gated: weight must be [{}], got {}", x.size(-1), shape_str(weight.sizes()));
  auto ct = compute_dtype(x);
  auto xc = x.to(ct), gc = gate.to(ct);
  auto y = xc * torch::rsqrt(xc.square().mean(-1, true) + eps) * weight.to(ct);
  if (activation == "silu" || activation == "swish") y = y * torch::silu(gc);
  else if (activation == "sigmoid") y = y * torch::sigmoid(gc);
  else fail("rms_norm_gated: unknown activation \"{}\" (have: silu, swish, sigmoid)", activation);
  return y.to(x.dtype());
}

}  // namespace hyla::ops
