#include "hyla/model/rope.h"

#include <cmath>
#include <numbers>

#include "hyla/util/error.h"

namespace hyla::model {

namespace {

torch::Tensor base_inv_freq(double theta, int64_t dim) {
  // theta^(-2i/dim), computed in float32 as transformers does (int64 arange -> float).
  auto i = torch::arange(0, dim, 2, torch::kInt64).to(torch::kFloat32);
  return 1.0 / torch::pow(torch::tensor(theta, torch::kFloat64).to(torch::kFloat32), i / double(dim));
}

double yarn_mscale(double scale, double m = 1.0) {
  return scale <= 1 ? 1.0 : 0.1 * m * std::log(scale) + 1.0;
}

// YaRN (Peng et al. 2023): interpolate low frequencies, extrapolate high ones, with a
// linear ramp between the correction dims found from beta_fast / beta_slow rotations.
torch::Tensor yarn_inv_freq(const RopeParams& p, int64_t dim, double* attention_scaling) {
  double base = p.theta, factor = p.factor;
  if (p.attention_factor) *attention_scaling = *p.attention_factor;
  else if (p.mscale && p.mscale_all_dim && *p.mscale && *p.mscale_all_dim)
    *attention_scaling = yarn_mscale(factor, *p.mscale) / yarn_mscale(factor, *p.mscale_all_dim);
  else *attention_scaling = yarn_mscale(factor);
  auto correction_dim = [&](double rotations) {
    return dim * std::log(p.original_max_position / (rotations * 2 * std::numbers::pi)) / (2 * std::log(base));
  };
  double low = correction_dim(p.beta_fast), high = correction_dim(p.beta_slow);
  if (p.truncate) { low = std::floor(low); high = std::ceil(high); }
  low = std::max(low, 0.0);
  high = std::min(high, double(dim - 1));
  if (low == high) high += 0.001;
  auto pos_freqs = torch::pow(torch::tensor(base, torch::kFloat32),
                              torch::arange(0, dim, 2).to(torch::kFloat32) / double(dim));
  auto extrapolation = 1.0 / pos_freqs;
  auto interpolation = 1.0 / (factor * pos_freqs);
  auto ramp = torch::clamp((torch::arange(dim / 2, torch::kFloat32) - low) / (high - low), 0, 1);
  auto extra_factor = 1 - ramp;
  return interpolation * (1 - extra_factor) + extrapolation * extra_factor;
}

// Llama 3.1: keep high frequencies, divide low ones by `factor`, smooth in between.
torch::Tensor llama3_inv_freq(const RopeParams& p, int64_t dim) {
  auto inv = base_inv_freq(p.theta, dim);
  double old_len = double(p.original_max_position);
  double low_wavelen = old_len / p.low_freq_factor, high_wavelen = old_len / p.high_freq_factor;
  auto wavelen = 2 * std::numbers::pi / inv;
  auto scaled = torch::where(wavelen > low_wavelen, inv / p.factor, inv);
  auto smooth = (old_len / wavelen - p.low_freq_factor) / (p.high_freq_factor - p.low_freq_factor);
  auto smoothed = (1 - smooth) * scaled / p.factor + smooth * scaled;
  auto medium = (wavelen >= high_wavelen).logical_and(wavelen <= low_wavelen);
  return torch::where(medium, smoothed, scaled);
}

}  // namespace

Rotary::Rotary(const RopeParams& p, int64_t head_dim) : p_(p), head_dim_(head_dim) {
  rotary_dim_ = static_cast<int64_t>(head_dim * p.partial_rotary_factor);
  HYLA_CHECK(rotary_dim_ > 0 && rotary_dim_ % 2 == 0, "rope: rotary dimension {} must be even and positive", rotary_dim_);
  if (p.type == "default" || p.type == "dynamic") inv_freq_ = base_inv_freq(p.theta, rotary_dim_);
  else if (p.type == "linear") inv_freq_ = base_inv_freq(p.theta, rotary_dim_) / p.factor;
  else if (p.type == "llama3") inv_freq_ = llama3_inv_freq(p, rotary_dim_);
  else if (p.type == "yarn") inv_freq_ = yarn_inv_freq(p, rotary_dim_, &attention_scaling_);
  else fail("rope: unsupported rope_type \"{}\"", p.type);
}

std::pair<torch::Tensor, torch::Tensor> Rotary::cos_sin(const torch::Tensor& positions) const {
  torch::Tensor inv = inv_freq_;
  if (p_.type == "dynamic" && positions.numel() > 0) {
    // Dynamic NTK: past the trained length, raise the base with the sequence length
    // seen in this call (transformers' _compute_dynamic_ntk_parameters).
    int64_t seq_len = positions.max().item<int64_t>() + 1;
    if (seq_len > p_.max_position) {
      double ratio = p_.factor * seq_len / double(p_.max_position) - (p_.factor - 1);
      double base = p_.theta * std::pow(ratio, double(rotary_dim_) / (rotary_dim_ - 2));
      inv = base_inv_freq(base, rotary_dim_);
    }
  }
  if (inv.device() != positions.device()) {
    if (inv.data_ptr() == inv_freq_.data_ptr()) {
      if (!inv_freq_device_.defined() || inv_freq_device_.device() != positions.device())
        inv_freq_device_ = inv_freq_.to(positions.device());
      inv = inv_freq_device_;
    } else {
      inv = inv.to(positions.device());
    }
  }
  auto freqs = positions.to(torch::kFloat32).unsqueeze(-1) * inv;  // [..., T, R/2]
  auto emb = torch::cat({freqs, freqs}, -1);
  auto cos = emb.cos(), sin = emb.sin();
  if (attention_scaling_ != 1.0) {
    cos = cos * attention_scaling_;
    sin = sin * attention_scaling_;
  }
  return {cos, sin};
}

torch::Tensor apply_rotary(const torch::Tensor& x, const torch::Tensor& cos_in, const torch::Tensor& sin_in) {
  // x [B, T, H, D]; cos/sin [T, R] or [B, T, R] -> broadcast over heads.
  int64_t R = cos_in.size(-1), D = x.size(-1);
  HYLA_CHECK(R <= D, "rope: rotary dim {} exceeds head dim {}", R, D);
  auto cos = cos_in.to(x.dtype()).unsqueeze(-2);
  auto sin = sin_in.to(x.dtype()).unsqueeze(-2);
  if (cos.dim() == 3) { cos = cos.unsqueeze(0); sin = sin.unsqueeze(0); }
  auto xr = R == D ? x : x.narrow(-1, 0, R);
  auto x1 = xr.narrow(-1, 0, R / 2), x2 = xr.narrow(-1, R / 2, R / 2);
  auto rotated = torch::cat({-x2, x1}, -1);
  auto out = xr * cos + rotated * sin;
  return R == D ? out : torch::cat({out, x.narrow(-1, R, D - R)}, -1);
}

}  // namespace hyla::model
