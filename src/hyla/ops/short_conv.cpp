#include "hyla/ops/short_conv.h"

#include "hyla/ops/recurrence.h"
#include "hyla/util/error.h"

namespace hyla::ops {

namespace {

// x [n, T, C] with its tail [n, C, W−1] prepended along time.
ShortConvResult conv_rows(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& bias,
                          const torch::Tensor& tail, bool silu) {
  int64_t T = x.size(1), W = w.size(1);
  auto xp = torch::cat({tail.transpose(1, 2), x}, 1);  // [n, W−1+T, C]
  auto y = xp.narrow(1, 0, T) * w.select(1, 0);
  for (int64_t i = 1; i < W; ++i) y = y + xp.narrow(1, i, T) * w.select(1, i);
  if (bias.defined()) y = y + bias;
  if (silu) y = torch::silu(y);
  return {y, xp.narrow(1, T, W - 1).transpose(1, 2)};
}

}  // namespace

ShortConvResult short_conv(const torch::Tensor& x, const torch::Tensor& weight_in,
                           const torch::Tensor& bias, const torch::Tensor& tail_in,
                           const torch::Tensor& cu_seqlens, bool silu) {
  const std::string op = "short_conv";
  HYLA_CHECK(x.dim() == 3, "{}: x must be [B, T, channels], got {}", op, shape_str(x.sizes()));
  int64_t B = x.size(0), T = x.size(1), C = x.size(2);
  auto weight = weight_in.dim() == 3 ? weight_in.squeeze(1) : weight_in;
  HYLA_CHECK(weight.dim() == 2 && weight.size(0) == C && weight.size(1) >= 1 &&
                 (weight_in.dim() == 2 || weight_in.size(1) == 1),
             "{}: weight must be [{}, W] or [{}, 1, W] for {} channels, got {}", op, C, C, C,
             shape_str(weight_in.sizes()));
  HYLA_CHECK(!bias.defined() || (bias.dim() == 1 && bias.size(0) == C),
             "{}: bias must be [{}], got {}", op, C, shape_str(bias.sizes()));
  int64_t W = weight.size(1);
  bool packed = cu_seqlens.defined();
  std::vector<int64_t> bounds{0, T};
  if (packed) {
    HYLA_CHECK(B == 1, "{}: packed sequences (cu_seqlens) need batch 1, got {}", op, B);
    bounds = sequence_bounds(cu_seqlens, T, op);
  }
  int64_t N = packed ? int64_t(bounds.size()) - 1 : B;
  auto ct = compute_dtype(x);
  auto xc = x.to(ct), w = weight.to(ct);
  auto b = bias.defined() ? bias.to(ct) : bias;
  torch::Tensor tail;
  if (tail_in.defined()) {
    std::vector<int64_t> ts{N, C, W - 1};
    HYLA_CHECK(tail_in.sizes() == ts, "{}: cached tail must be [N, channels, W−1] = {}, got {}", op,
               shape_str(ts), shape_str(tail_in.sizes()));
    tail = tail_in.to(ct);
  } else {
    tail = torch::zeros({N, C, W - 1}, xc.options());
  }
  if (!packed) {
    auto r = conv_rows(xc, w, b, tail, silu);
    return {r.y.to(x.dtype()), r.tail};
  }
  std::vector<torch::Tensor> ys, tails;
  for (int64_t n = 0; n < N; ++n) {
    auto r = conv_rows(xc.narrow(1, bounds[n], bounds[n + 1] - bounds[n]), w, b,
                       tail.narrow(0, n, 1), silu);
    ys.push_back(r.y);
    tails.push_back(r.tail);
  }
  return {torch::cat(ys, 1).to(x.dtype()), torch::cat(tails, 0)};
}

}  // namespace hyla::ops
