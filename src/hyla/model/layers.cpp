#include "hyla/model/layers.h"

namespace hyla::model {

torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
  auto xf = x.to(torch::kFloat32);
  auto normed = xf * torch::rsqrt(xf.pow(2).mean(-1, true) + eps);
  return weight * normed.to(x.dtype());
}

torch::Tensor rms_norm_unit_offset(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
  auto xf = x.to(torch::kFloat32);
  auto normed = xf * torch::rsqrt(xf.pow(2).mean(-1, true) + eps);
  return (normed * (1.0 + weight.to(torch::kFloat32))).to(x.dtype());
}

RMSNormImpl::RMSNormImpl(int64_t dim, double eps, bool unit_offset) : eps_(eps), unit_offset_(unit_offset) {
  weight = register_parameter("weight", unit_offset ? torch::zeros({dim}) : torch::ones({dim}));
}

torch::nn::Linear make_linear(int64_t in, int64_t out, bool bias) {
  return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(bias));
}

MlpImpl::MlpImpl(int64_t hidden, int64_t intermediate, bool bias) {
  gate_proj = register_module("gate_proj", make_linear(hidden, intermediate, bias));
  up_proj = register_module("up_proj", make_linear(hidden, intermediate, bias));
  down_proj = register_module("down_proj", make_linear(intermediate, hidden, bias));
}

torch::Tensor MlpImpl::forward(const torch::Tensor& x) {
  return down_proj(torch::silu(gate_proj(x)) * up_proj(x));
}

}  // namespace hyla::model
