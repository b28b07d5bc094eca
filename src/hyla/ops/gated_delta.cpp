#include "hyla/ops/gated_delta.h"

#include <cmath>
#include <limits>

#include "hyla/util/error.h"

namespace hyla::ops {

namespace {

struct Dims {
  int64_t B, T, H, HV, dk, dv;
};

// Shapes of a token-sequence call: q, k [B, T, H, dk]; v [B, T, HV, dv]; g, beta [B, T, HV].
Dims check_sequence(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                    const torch::Tensor& g, const torch::Tensor& beta, const std::string& op) {
  HYLA_CHECK(q.dim() == 4, "{}: q must be [B, T, H, dk], got {}", op, shape_str(q.sizes()));
  HYLA_CHECK(v.dim() == 4, "{}: v must be [B, T, HV, dv], got {}", op, shape_str(v.sizes()));
  Dims d{q.size(0), q.size(1), q.size(2), v.size(2), q.size(3), v.size(3)};
  HYLA_CHECK(k.sizes() == q.sizes(), "{}: k must have q's shape {}, got {}", op, shape_str(q.sizes()), shape_str(k.sizes()));
  HYLA_CHECK(v.size(0) == d.B && v.size(1) == d.T,
             "{}: v must be [B={}, T={}, HV, dv], got {}", op, d.B, d.T, shape_str(v.sizes()));
  HYLA_CHECK(d.H > 0 && d.HV % d.H == 0,
             "{}: value heads HV={} must be a multiple of query/key heads H={}", op, d.HV, d.H);
  std::vector<int64_t> gs{d.B, d.T, d.HV};
  HYLA_CHECK(g.sizes() == gs, "{}: g must be [B, T, HV] = {}, got {}", op, shape_str(gs), shape_str(g.sizes()));
  HYLA_CHECK(beta.sizes() == gs, "{}: beta must be [B, T, HV] = {}, got {}", op, shape_str(gs), shape_str(beta.sizes()));
  return d;
}

// Grouped value attention: query/key head h serves value heads h·G .. h·G+G−1 (fla's
// i_hv / (HV/H)), so repeating each q/k head G times in place lines them up.
torch::Tensor expand_heads(const torch::Tensor& x, int64_t groups, int64_t head_dim_index) {
  return groups == 1 ? x : x.repeat_interleave(groups, head_dim_index);
}

double resolve_scale(double scale, int64_t dk) { return scale < 0 ? 1.0 / std::sqrt(double(dk)) : scale; }

// One token, all heads already expanded to HV, q pre-scaled; updates S in place of the
// caller's variable (functionally, so autograd sees a chain). gdn.md step 5–6.
torch::Tensor delta_step(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                         const torch::Tensor& g, const torch::Tensor& beta, torch::Tensor& S) {
  S = S * g.exp().unsqueeze(-1).unsqueeze(-1);                      // S' = α S
  auto kS = torch::matmul(k.unsqueeze(-2), S).squeeze(-2);          // S'ᵀ k
  auto u = beta.unsqueeze(-1) * (v - kS);                           // u = β (v − S'ᵀk)
  S = S + k.unsqueeze(-1) * u.unsqueeze(-2);                        // S = S' + k uᵀ
  return torch::matmul(q.unsqueeze(-2), S).squeeze(-2);             // o = Sᵀ q
}

// Tokens [t0, t1) of every batch row, starting from state S.
void recurrent_span(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                    const torch::Tensor& g, const torch::Tensor& beta, int64_t t0, int64_t t1,
                    torch::Tensor& S, std::vector<torch::Tensor>& outs) {
  for (int64_t t = t0; t < t1; ++t) {
    auto at = [&](const torch::Tensor& x) { return x.select(1, t); };
    outs.push_back(delta_step(at(q), at(k), at(v), at(g), at(beta), S));
  }
}

// [N, t_pad, heads, ...] -> [N, heads, NC, C, ...]
torch::Tensor to_chunks(const torch::Tensor& x, int64_t C) {
  auto y = x.transpose(1, 2);
  auto s = y.sizes().vec();
  std::vector<int64_t> shape{s[0], s[1], s[2] / C, C};
  shape.insert(shape.end(), s.begin() + 3, s.end());
  return y.reshape(shape);
}

int64_t round_up(int64_t t, int64_t c) { return std::max<int64_t>(c, (t + c - 1) / c * c); }

// The chunk-parallel pass (gdn.md "Chunk-parallel form", methods.md §2.3) over tensors
// laid out [N, HV, NC, C, ·]; q pre-scaled. Returns o [N, HV, NC, C, dv] and the state.
std::pair<torch::Tensor, torch::Tensor> delta_chunks(const torch::Tensor& q, const torch::Tensor& k,
                                                     const torch::Tensor& v, const torch::Tensor& g,
                                                     const torch::Tensor& beta, torch::Tensor S) {
  int64_t C = g.size(-1), NC = g.size(-2), dv = v.size(-1), dk = k.size(-1);
  auto gam = g.cumsum(-1);  // γ_i, chunk-local inclusive
  auto causal = torch::ones({C, C}, g.options().dtype(torch::kBool)).tril();
  // D_ij = exp(γ_i − γ_j) for i ≥ j; the upper triangle is masked before exp (it would
  // overflow: γ decreases), per methods.md §2.6.
  auto D = (gam.unsqueeze(-1) - gam.unsqueeze(-2))
               .masked_fill(causal.logical_not(), -std::numeric_limits<double>::infinity())
               .exp();
  auto kb = k * beta.unsqueeze(-1);
  // Step 1: A_ij = β_i (k_iᵀk_j) exp(γ_i − γ_j), i > j. T = (I + A)^{-1} is applied by a
  // unit-lower-triangular solve, which is the same forward substitution.
  auto A = (torch::matmul(kb, k.transpose(-1, -2)) * D).tril(-1);
  auto rhs = torch::cat({v * beta.unsqueeze(-1), kb * gam.exp().unsqueeze(-1)}, -1);
  auto X = torch::linalg_solve_triangular(A, rhs, /*upper=*/false, /*left=*/true,
                                          /*unitriangular=*/true);
  // Step 2: U = T V_β, W = T (K_β ⊙ exp(γ)).
  auto U = X.narrow(-1, 0, dv), W = X.narrow(-1, dv, dk);
  auto Aqk = torch::matmul(q, k.transpose(-1, -2)) * D;  // (Q Kᵀ) ⊙ D, diagonal included
  auto q_dec = q * gam.exp().unsqueeze(-1);
  auto last = gam.narrow(-1, C - 1, 1);
  auto k_dec = k * (last - gam).exp().unsqueeze(-1);
  auto a_last = last.squeeze(-1).exp().unsqueeze(-1).unsqueeze(-1);  // [N, HV, NC, 1, 1]
  // Step 3, sequential over chunks: V' = U − W S; O = (Q⊙e^γ) S + ((QKᵀ)⊙D) V';
  // S ← e^{γ_C} S + (K ⊙ e^{γ_C − γ})ᵀ V'.
  std::vector<torch::Tensor> outs;
  outs.reserve(NC);
  for (int64_t n = 0; n < NC; ++n) {
    auto Vp = U.select(2, n) - torch::matmul(W.select(2, n), S);
    outs.push_back(torch::matmul(q_dec.select(2, n), S) + torch::matmul(Aqk.select(2, n), Vp));
    S = S * a_last.select(2, n) + torch::matmul(k_dec.select(2, n).transpose(-1, -2), Vp);
  }
  return {torch::stack(outs, 2), S};
}

}  // namespace

RecurrenceResult gated_delta_recurrent(const torch::Tensor& q_in, const torch::Tensor& k_in,
                                       const torch::Tensor& v_in, const torch::Tensor& g_in,
                                       const torch::Tensor& beta_in, const RecurrenceOptions& opt) {
  const std::string op = "gated_delta_recurrent";
  auto d = check_sequence(q_in, k_in, v_in, g_in, beta_in, op);
  auto ct = compute_dtype(q_in);
  int64_t G = d.HV / d.H;
  auto q = expand_heads(q_in.to(ct) * resolve_scale(opt.scale, d.dk), G, 2);
  auto k = expand_heads(k_in.to(ct), G, 2);
  auto v = v_in.to(ct), g = g_in.to(ct), beta = beta_in.to(ct);
  std::vector<torch::Tensor> outs, states;
  if (opt.cu_seqlens.defined()) {
    HYLA_CHECK(d.B == 1, "{}: packed sequences (cu_seqlens) need batch 1, got {}", op, d.B);
    auto bounds = sequence_bounds(opt.cu_seqlens, d.T, op);
    int64_t N = int64_t(bounds.size()) - 1;
    auto S0 = initial_state_or_zeros(opt.initial_state, N, d.HV, d.dk, d.dv, ct, q.device(), op);
    for (int64_t n = 0; n < N; ++n) {
      auto S = S0.narrow(0, n, 1);
      recurrent_span(q, k, v, g, beta, bounds[n], bounds[n + 1], S, outs);
      states.push_back(S);
    }
    auto o = outs.empty() ? torch::zeros({1, 0, d.HV, d.dv}, v.options()) : torch::stack(outs, 1);
    return {o.to(v_in.dtype()), torch::cat(states, 0)};
  }
  auto S0 = initial_state_or_zeros(opt.initial_state, d.B, d.HV, d.dk, d.dv, ct, q.device(), op);
  auto S = S0;
  recurrent_span(q, k, v, g, beta, 0, d.T, S, outs);
  auto o = outs.empty() ? torch::zeros({d.B, 0, d.HV, d.dv}, v.options()) : torch::stack(outs, 1);
  return {o.to(v_in.dtype()), S};
}

RecurrenceResult gated_delta_chunked(const torch::Tensor& q_in, const torch::Tensor& k_in,
                                     const torch::Tensor& v_in, const torch::Tensor& g_in,
                                     const torch::Tensor& beta_in, const RecurrenceOptions& opt) {
  const std::string op = "gated_delta_chunked";
  auto d = check_sequence(q_in, k_in, v_in, g_in, beta_in, op);
  HYLA_CHECK(opt.chunk_size > 0, "{}: chunk_size must be positive, got {}", op, opt.chunk_size);
  auto ct = compute_dtype(q_in);
  int64_t G = d.HV / d.H, C = opt.chunk_size;
  auto q = expand_heads(q_in.to(ct) * resolve_scale(opt.scale, d.dk), G, 2);
  auto k = expand_heads(k_in.to(ct), G, 2);
  auto v = v_in.to(ct), g = g_in.to(ct), beta = beta_in.to(ct);
  // Padding rows carry k = v = 0, β = 0 and g = 0, so they leave the state untouched.
  bool packed = opt.cu_seqlens.defined();
  std::vector<int64_t> bounds;
  int64_t N = d.B, t_pad;
  if (packed) {
    HYLA_CHECK(d.B == 1, "{}: packed sequences (cu_seqlens) need batch 1, got {}", op, d.B);
    bounds = sequence_bounds(opt.cu_seqlens, d.T, op);
    N = int64_t(bounds.size()) - 1;
    int64_t longest = 0;
    for (int64_t n = 0; n < N; ++n) longest = std::max(longest, bounds[n + 1] - bounds[n]);
    t_pad = round_up(longest, C);
    for (auto* x : {&q, &k, &v, &g, &beta}) *x = pad_sequences(*x, bounds, t_pad);
  } else {
    t_pad = round_up(d.T, C);
    for (auto* x : {&q, &k, &v, &g, &beta}) *x = pad_time(*x, t_pad);
  }
  auto S0 = initial_state_or_zeros(opt.initial_state, N, d.HV, d.dk, d.dv, ct, q.device(), op);
  auto [o, S] = delta_chunks(to_chunks(q, C), to_chunks(k, C), to_chunks(v, C), to_chunks(g, C),
                             to_chunks(beta, C), S0);
  o = o.reshape({N, d.HV, t_pad, d.dv}).transpose(1, 2);
  o = packed ? unpad_sequences(o, bounds) : o.narrow(1, 0, d.T);
  return {o.to(v_in.dtype()), S};
}

RecurrenceResult gated_delta_step(const torch::Tensor& q_in, const torch::Tensor& k_in,
                                  const torch::Tensor& v_in, const torch::Tensor& g_in,
                                  const torch::Tensor& beta_in, const torch::Tensor& state,
                                  double scale) {
  const std::string op = "gated_delta_step";
  HYLA_CHECK(q_in.dim() == 3 && k_in.sizes() == q_in.sizes(),
             "{}: q and k must both be [B, H, dk], got {} and {}", op, shape_str(q_in.sizes()), shape_str(k_in.sizes()));
  HYLA_CHECK(v_in.dim() == 3 && v_in.size(0) == q_in.size(0),
             "{}: v must be [B={}, HV, dv], got {}", op, q_in.size(0), shape_str(v_in.sizes()));
  int64_t B = q_in.size(0), H = q_in.size(1), dk = q_in.size(2), HV = v_in.size(1), dv = v_in.size(2);
  HYLA_CHECK(H > 0 && HV % H == 0, "{}: value heads HV={} must be a multiple of H={}", op, HV, H);
  std::vector<int64_t> gs{B, HV};
  HYLA_CHECK(g_in.sizes() == gs, "{}: g must be [B, HV] = {}, got {}", op, shape_str(gs), shape_str(g_in.sizes()));
  HYLA_CHECK(beta_in.sizes() == gs, "{}: beta must be [B, HV] = {}, got {}", op, shape_str(gs), shape_str(beta_in.sizes()));
  auto ct = compute_dtype(q_in);
  auto S = initial_state_or_zeros(state, B, HV, dk, dv, ct, q_in.device(), op);
  auto q = expand_heads(q_in.to(ct) * resolve_scale(scale, dk), HV / H, 1);
  auto k = expand_heads(k_in.to(ct), HV / H, 1);
  auto o = delta_step(q, k, v_in.to(ct), g_in.to(ct), beta_in.to(ct), S);
  return {o.to(v_in.dtype()), S};
}

}  // namespace hyla::ops
