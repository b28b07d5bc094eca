#include "hyla/distill/attention_stats.h"

#include <cmath>
#include <limits>

#include "hyla/model/rope.h"
#include "hyla/util/error.h"

namespace hyla::distill {
using torch::indexing::Slice;

std::vector<torch::Tensor> teacher_layer_inputs(model::CausalLM& teacher, const torch::Tensor& ids) {
  torch::NoGradGuard ng;
  std::vector<torch::Tensor> outs;
  model::ForwardOptions fo;
  fo.hidden_states = &outs;
  fo.compute_logits = false;
  teacher->forward(ids, fo);
  std::vector<torch::Tensor> xs;
  auto h = teacher->embed(ids);
  for (int64_t l = 0; l < teacher->num_layers(); ++l) {
    const auto& in = l == 0 ? h : outs[l - 1];
    xs.push_back(teacher->layer(l)->input_layernorm(in));
  }
  return xs;
}

TeacherAttention teacher_attention(const model::AttentionImpl& a, const model::ModelConfig& c, int64_t layer,
                                   const torch::Tensor& x_in) {
  torch::NoGradGuard ng;
  auto dt = x_in.scalar_type() == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
  auto x = x_in.to(dt);
  int64_t B = x.size(0), T = x.size(1), Hq = c.num_attention_heads, Hkv = c.num_key_value_heads, D = c.head_dim;
  auto lin = [&](const torch::nn::Linear& l, const torch::Tensor& in) {
    auto b = l->bias.defined() ? l->bias.to(dt) : torch::Tensor();
    return torch::nn::functional::linear(in, l->weight.to(dt), b);
  };
  auto q = lin(a.q_proj, x).view({B, T, Hq, D});
  auto k = lin(a.k_proj, x).view({B, T, Hkv, D});
  auto v = lin(a.v_proj, x).view({B, T, Hkv, D});
  if (!a.q_norm.is_empty()) {
    q = model::rms_norm(q, a.q_norm->weight.to(dt), c.rms_norm_eps);
    k = model::rms_norm(k, a.k_norm->weight.to(dt), c.rms_norm_eps);
  }
  auto positions = torch::arange(T, torch::TensorOptions().dtype(torch::kInt64).device(x.device()));
  if (!c.attention_nope) {
    model::Rotary rot(c.rope, D);
    auto [cos, sin] = rot.cos_sin(positions);
    q = model::apply_rotary(q, cos.to(dt), sin.to(dt));
    k = model::apply_rotary(k, cos.to(dt), sin.to(dt));
  }
  if (c.attention_logn_base > 0) {  // HyPE query scaling, as AttentionImpl applies it
    auto s = torch::log(positions.to(dt) + c.attention_logn_base) / std::log(c.attention_logn_base);
    q = q * s.view({1, T, 1, 1});
  }
  int64_t G = Hq / Hkv;
  auto kq = k.repeat_interleave(G, 2), vq = v.repeat_interleave(G, 2);  // query head j reads kv head j / G
  auto scores = torch::einsum("bihd,bjhd->bhij", {q, kq}) / std::sqrt(double(D));
  int64_t window = c.layer_type(layer) == "sliding_attention" ? c.sliding_window : 0;
  auto mask = model::attention_mask(0, T, T, window, {}, x.device());
  scores = scores.masked_fill(mask.logical_not(), -std::numeric_limits<double>::infinity());
  TeacherAttention r;
  r.probs = torch::softmax(scores, -1);
  r.values = vq;
  r.context = torch::einsum("bhij,bjhd->bihd", {r.probs, vq});
  r.output = lin(a.o_proj, r.context.reshape({B, T, Hq * D}));
  return r;
}

void HeadStats::add(const torch::Tensor& probs_in) {
  auto p = probs_in.to(torch::kFloat64);
  int64_t B = p.size(0), H = p.size(1), T = p.size(2);
  auto opts = torch::TensorOptions().dtype(torch::kFloat64).device(p.device());
  auto i = torch::arange(T, opts).unsqueeze(1), j = torch::arange(T, opts).unsqueeze(0);
  auto causal = (j <= i).to(torch::kFloat64);
  auto dist = (i - j).clamp_min(0.5) * causal;  // self-distance 0.5, zero above the diagonal
  auto d = (p * dist).sum(-1).sum(torch::IntArrayRef{0, 2});                                   // [H]
  auto e = -(p * torch::log(p.clamp_min(1e-10)) * causal).sum(-1).sum(torch::IntArrayRef{0, 2});  // [H]
  // Mass at distance δ: the δ-th subdiagonal of every row that reaches it.
  auto mass = torch::zeros({H, T}, opts), reach = torch::zeros({T}, opts);
  for (int64_t delta = 0; delta < T; ++delta) {
    mass.select(1, delta).add_(p.diagonal(-delta, 2, 3).sum(torch::IntArrayRef{0, 2}));
    reach.select(0, delta).fill_(double(B * (T - delta)));
  }
  if (!distance_sum_.defined()) {
    distance_sum_ = d, entropy_sum_ = e, mass_by_distance_ = mass, rows_by_distance_ = reach;
  } else {
    HYLA_CHECK(distance_sum_.size(0) == H, "attention stats: head count changed between batches");
    distance_sum_.add_(d), entropy_sum_.add_(e);
    int64_t n = std::min(mass.size(1), mass_by_distance_.size(1));
    if (mass.size(1) > mass_by_distance_.size(1)) std::swap(mass, mass_by_distance_), std::swap(reach, rows_by_distance_);
    mass_by_distance_.narrow(1, 0, n).add_(mass.narrow(1, 0, n));
    rows_by_distance_.narrow(0, 0, n).add_(reach.narrow(0, 0, n));
  }
  rows_ += B * T;
}

torch::Tensor HeadStats::mean_distance() const { return distance_sum_ / double(rows_); }
torch::Tensor HeadStats::entropy() const { return entropy_sum_ / double(rows_); }

torch::Tensor HeadStats::fitted_log_decay(int64_t max_distance) const {
  int64_t H = mass_by_distance_.size(0), n = std::min(max_distance + 1, mass_by_distance_.size(1));
  std::vector<double> out(H);
  for (int64_t h = 0; h < H; ++h) {
    double sw = 0, sx = 0, sy = 0, sxx = 0, sxy = 0;
    for (int64_t delta = 0; delta < n; ++delta) {
      double w = rows_by_distance_[delta].item<double>();
      double m = mass_by_distance_[h][delta].item<double>() / w;
      if (m <= 0) continue;
      double y = std::log(m);
      sw += w, sx += w * delta, sy += w * y, sxx += w * delta * delta, sxy += w * delta * y;
    }
    double var = sxx * sw - sx * sx;
    out[h] = var > 0 ? -(sxy * sw - sx * sy) / var : 0.0;  // τ = −slope
  }
  return torch::tensor(out, torch::kFloat64);
}

}  // namespace hyla::distill
