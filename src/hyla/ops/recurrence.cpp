#include "hyla/ops/recurrence.h"

#include "hyla/util/error.h"

namespace hyla::ops {

std::string shape_str(c10::IntArrayRef sizes) {
  std::string s = "[";
  for (size_t i = 0; i < sizes.size(); ++i) s += (i ? ", " : "") + std::to_string(sizes[i]);
  return s + "]";
}

torch::ScalarType compute_dtype(const torch::Tensor& t) {
  return t.scalar_type() == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
}

std::vector<int64_t> sequence_bounds(const torch::Tensor& cu_seqlens, int64_t total,
                                     const std::string& op) {
  HYLA_CHECK(cu_seqlens.dim() == 1 && cu_seqlens.size(0) >= 2,
             "{}: cu_seqlens must be a 1-d tensor [N+1] with N >= 1, got shape {}", op,
             shape_str(cu_seqlens.sizes()));
  auto c = cu_seqlens.to(torch::kCPU, torch::kInt64).contiguous();
  std::vector<int64_t> b(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
  HYLA_CHECK(b.front() == 0 && b.back() == total,
             "{}: cu_seqlens must run from 0 to the packed length {}, got {}..{}", op, total,
             b.front(), b.back());
  for (size_t i = 1; i < b.size(); ++i)
    HYLA_CHECK(b[i] >= b[i - 1], "{}: cu_seqlens must be non-decreasing (entry {}: {} < {})",
               op, i, b[i], b[i - 1]);
  return b;
}

torch::Tensor pad_time(const torch::Tensor& x, int64_t t_pad) {
  int64_t t = x.size(1);
  if (t == t_pad) return x;
  auto sizes = x.sizes().vec();
  sizes[1] = t_pad - t;
  return torch::cat({x, torch::zeros(sizes, x.options())}, 1);
}

torch::Tensor pad_sequences(const torch::Tensor& x, const std::vector<int64_t>& bounds,
                            int64_t t_pad) {
  std::vector<torch::Tensor> rows;
  for (size_t i = 0; i + 1 < bounds.size(); ++i)
    rows.push_back(pad_time(x.narrow(1, bounds[i], bounds[i + 1] - bounds[i]), t_pad));
  return torch::cat(rows, 0);
}

torch::Tensor unpad_sequences(const torch::Tensor& x, const std::vector<int64_t>& bounds) {
  std::vector<torch::Tensor> parts;
  for (size_t i = 0; i + 1 < bounds.size(); ++i)
    parts.push_back(x.narrow(0, int64_t(i), 1).narrow(1, 0, bounds[i + 1] - bounds[i]));
  return torch::cat(parts, 1);
}

torch::Tensor initial_state_or_zeros(const torch::Tensor& s, int64_t n, int64_t heads,
                                     int64_t dk, int64_t dv, torch::ScalarType dt,
                                     torch::Device dev, const std::string& op) {
  if (!s.defined()) return torch::zeros({n, heads, dk, dv}, torch::TensorOptions().dtype(dt).device(dev));
  HYLA_CHECK(s.dim() == 4 && s.size(0) == n && s.size(1) == heads && s.size(2) == dk &&
                 s.size(3) == dv,
             "{}: initial_state must be [{}, {}, {}, {}] (sequences, heads, dk, dv), got {}", op,
             n, heads, dk, dv, shape_str(s.sizes()));
  return s.to(dev, dt);
}

}  // namespace hyla::ops
