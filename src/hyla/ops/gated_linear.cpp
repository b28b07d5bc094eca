#include "hyla/ops/gated_linear.h"

#include <cmath>
#include <limits>

#include "hyla/util/error.h"

namespace hyla::ops {

namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

struct Dims {
  int64_t B, T, H, dk, dv;
  bool per_key;  // g [.., dk] rather than one scalar per head
};

Dims check_sequence(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                    const torch::Tensor& g, const std::string& op) {
  HYLA_CHECK(q.dim() == 4, "{}: q must be [B, T, H, dk], got {}", op, shape_str(q.sizes()));
  HYLA_CHECK(k.sizes() == q.sizes(), "{}: k must have q's shape {}, got {}", op, shape_str(q.sizes()), shape_str(k.sizes()));
  Dims d{q.size(0), q.size(1), q.size(2), q.size(3), 0, false};
  HYLA_CHECK(v.dim() == 4 && v.size(0) == d.B && v.size(1) == d.T && v.size(2) == d.H,
             "{}: v must be [B={}, T={}, H={}, dv], got {}", op, d.B, d.T, d.H, shape_str(v.sizes()));
  d.dv = v.size(3);
  std::vector<int64_t> gs{d.B, d.T, d.H}, gk{d.B, d.T, d.H, d.dk};
  d.per_key = g.sizes() == gk;
  HYLA_CHECK(d.per_key || g.sizes() == gs,
             "{}: g must be [B, T, H, dk] = {} or [B, T, H] = {}, got {}", op, shape_str(gk), shape_str(gs), shape_str(g.sizes()));
  return d;
}

double resolve_scale(double scale, int64_t dk) { return scale < 0 ? 1.0 / std::sqrt(double(dk)) : scale; }

// exp(g) shaped to multiply a state [.., dk, dv]: per key row, or one scalar.
torch::Tensor state_decay(const torch::Tensor& g, bool per_key) {
  return per_key ? g.exp().unsqueeze(-1) : g.exp().unsqueeze(-1).unsqueeze(-1);
}

torch::Tensor linear_step(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                          const torch::Tensor& g, bool per_key, torch::Tensor& S) {
  S = S * state_decay(g, per_key) + k.unsqueeze(-1) * v.unsqueeze(-2);
  return torch::matmul(q.unsqueeze(-2), S).squeeze(-2);
}

torch::Tensor to_chunks(const torch::Tensor& x, int64_t C) {
  auto y = x.transpose(1, 2);
  auto s = y.sizes().vec();
  std::vector<int64_t> shape{s[0], s[1], s[2] / C, C};
  shape.insert(shape.end(), s.begin() + 3, s.end());
  return y.reshape(shape);
}

int64_t round_up(int64_t t, int64_t c) { return std::max<int64_t>(c, (t + c - 1) / c * c); }

// What the sequential state pass needs from one chunk layout [N, H, NC, C, ·].
struct ChunkTerms {
  torch::Tensor intra;  // [.., C, C]: o_intra = intra @ v (causal, diagonal included)
  torch::Tensor q_dec;  // q ⊙ e^Γ
  torch::Tensor k_dec;  // k ⊙ e^{Γ_C − Γ}
  torch::Tensor last;   // e^{Γ_C}, shaped to multiply S: [.., NC, dk or 1, 1]
};

// Scalar decay: D_ij = exp(γ_i − γ_j), i ≥ j, masked before exp.
ChunkTerms scalar_terms(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& g) {
  int64_t C = g.size(-1);
  auto gam = g.cumsum(-1);
  auto causal = torch::ones({C, C}, g.options().dtype(torch::kBool)).tril();
  auto D = (gam.unsqueeze(-1) - gam.unsqueeze(-2)).masked_fill(causal.logical_not(), kNegInf).exp();
  auto lastg = gam.narrow(-1, C - 1, 1);
  return {torch::matmul(q, k.transpose(-1, -2)) * D, q * gam.exp().unsqueeze(-1),
          k * (lastg - gam).exp().unsqueeze(-1), lastg.exp().unsqueeze(-1)};
}

// Per-key-dim decay: A_ij = Σ_d q_id k_jd exp(Γ_id − Γ_jd), i ≥ j. Diagonal sub-chunk
// blocks are formed elementwise (exponents masked, ≤ 0); blocks below them factor
// through the reference row r_a = a·c − 1 (last row of the previous sub-chunk):
// exp(Γ_i − Γ_j) = exp(Γ_i − Γ_r) · exp(Γ_r − Γ_j), both exponents ≤ 0 for j ≤ r < i.
ChunkTerms per_key_terms(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& g) {
  int64_t C = g.size(-2), dk = g.size(-1);
  int64_t c = C % 16 == 0 ? 16 : C, ns = C / c;
  auto bopt = g.options().dtype(torch::kBool);
  auto Gam = g.cumsum(-2);  // [.., NC, C, dk]
  auto lead = Gam.sizes().slice(0, Gam.dim() - 2).vec();
  auto split = [&](const torch::Tensor& x) {
    auto s = lead;
    s.insert(s.end(), {ns, c, dk});
    return x.reshape(s);
  };
  auto qs = split(q), ks = split(k), Gs = split(Gam);  // [.., ns, c, dk]
  auto causal_c = torch::ones({c, c}, bopt).tril().unsqueeze(-1);
  auto E = (Gs.unsqueeze(-2) - Gs.unsqueeze(-3)).masked_fill(causal_c.logical_not(), kNegInf).exp();
  auto diag = (qs.unsqueeze(-2) * ks.unsqueeze(-3) * E).sum(-1);  // [.., ns, c, c]
  auto ref = torch::arange(ns, g.options().dtype(torch::kInt64)) * c - 1;
  auto Gref = Gam.index_select(-2, ref.clamp_min(0));  // [.., ns, dk]
  auto q_t = qs * (Gs - Gref.unsqueeze(-2)).exp();
  auto keep = torch::arange(C, g.options().dtype(torch::kInt64)).unsqueeze(0) <= ref.unsqueeze(1);
  auto k_t = k.unsqueeze(-3) *
             (Gref.unsqueeze(-2) - Gam.unsqueeze(-3)).masked_fill(keep.logical_not().unsqueeze(-1), kNegInf).exp();
  auto off = torch::matmul(q_t, k_t.transpose(-1, -2));  // [.., ns, c, C]
  auto eye = torch::eye(ns, g.options()).view({ns, 1, ns, 1});
  auto block = (diag.unsqueeze(-2) * eye).flatten(-2);     // [.., ns, c, C]
  auto sq = lead;
  sq.insert(sq.end(), {C, C});
  auto lastG = Gam.narrow(-2, C - 1, 1);
  return {(off + block).reshape(sq), q * Gam.exp(), k * (lastG - Gam).exp(),
          lastG.squeeze(-2).exp().unsqueeze(-1)};
}

std::pair<torch::Tensor, torch::Tensor> linear_chunks(const torch::Tensor& q, const torch::Tensor& k,
                                                      const torch::Tensor& v, const torch::Tensor& g,
                                                      bool per_key, torch::Tensor S) {
  auto t = per_key ? per_key_terms(q, k, g) : scalar_terms(q, k, g);
  auto intra = torch::matmul(t.intra, v);
  int64_t NC = v.size(2);
  std::vector<torch::Tensor> outs;
  outs.reserve(NC);
  // O = (Q ⊙ e^Γ) S + intra; S ← e^{Γ_C} S + (K ⊙ e^{Γ_C − Γ})ᵀ V (methods.md §4.1).
  for (int64_t n = 0; n < NC; ++n) {
    outs.push_back(torch::matmul(t.q_dec.select(2, n), S) + intra.select(2, n));
    S = S * t.last.select(2, n) + torch::matmul(t.k_dec.select(2, n).transpose(-1, -2), v.select(2, n));
  }
  return {torch::stack(outs, 2), S};
}

}  // namespace

RecurrenceResult gated_linear_recurrent(const torch::Tensor& q_in, const torch::Tensor& k_in,
                                        const torch::Tensor& v_in, const torch::Tensor& g_in,
                                        const RecurrenceOptions& opt) {
  const std::string op = "gated_linear_recurrent";
  auto d = check_sequence(q_in, k_in, v_in, g_in, op);
  auto ct = compute_dtype(q_in);
  auto q = q_in.to(ct) * resolve_scale(opt.scale, d.dk), k = k_in.to(ct), v = v_in.to(ct),
       g = g_in.to(ct);
  std::vector<int64_t> bounds{0, d.T};
  int64_t N = d.B;
  if (opt.cu_seqlens.defined()) {
    HYLA_CHECK(d.B == 1, "{}: packed sequences (cu_seqlens) need batch 1, got {}", op, d.B);
    bounds = sequence_bounds(opt.cu_seqlens, d.T, op);
    N = int64_t(bounds.size()) - 1;
  }
  auto S0 = initial_state_or_zeros(opt.initial_state, N, d.H, d.dk, d.dv, ct, q.device(), op);
  std::vector<torch::Tensor> outs, states;
  // Unpacked: every row at once (bounds {0, T}); packed: one sequence after another.
  for (size_t n = 0; n + 1 < bounds.size(); ++n) {
    auto S = opt.cu_seqlens.defined() ? S0.narrow(0, int64_t(n), 1) : S0;
    for (int64_t t = bounds[n]; t < bounds[n + 1]; ++t)
      outs.push_back(linear_step(q.select(1, t), k.select(1, t), v.select(1, t), g.select(1, t),
                                 d.per_key, S));
    states.push_back(S);
  }
  auto o = outs.empty() ? torch::zeros({d.B, 0, d.H, d.dv}, v.options()) : torch::stack(outs, 1);
  return {o.to(v_in.dtype()), torch::cat(states, 0)};
}

RecurrenceResult gated_linear_chunked(const torch::Tensor& q_in, const torch::Tensor& k_in,
                                      const torch::Tensor& v_in, const torch::Tensor& g_in,
                                      const RecurrenceOptions& opt) {
  const std::string op = "gated_linear_chunked";
  auto d = check_sequence(q_in, k_in, v_in, g_in, op);
  HYLA_CHECK(opt.chunk_size > 0, "{}: chunk_size must be positive, got {}", op, opt.chunk_size);
  auto ct = compute_dtype(q_in);
  int64_t C = opt.chunk_size;
  auto q = q_in.to(ct) * resolve_scale(opt.scale, d.dk), k = k_in.to(ct), v = v_in.to(ct),
       g = g_in.to(ct);
  // Padding rows carry k = v = 0 and g = 0: the state passes through unchanged.
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
    for (auto* x : {&q, &k, &v, &g}) *x = pad_sequences(*x, bounds, t_pad);
  } else {
    t_pad = round_up(d.T, C);
    for (auto* x : {&q, &k, &v, &g}) *x = pad_time(*x, t_pad);
  }
  auto S0 = initial_state_or_zeros(opt.initial_state, N, d.H, d.dk, d.dv, ct, q.device(), op);
  auto [o, S] = linear_chunks(to_chunks(q, C), to_chunks(k, C), to_chunks(v, C), to_chunks(g, C),
                              d.per_key, S0);
  o = o.reshape({N, d.H, t_pad, d.dv}).transpose(1, 2);
  o = packed ? unpad_sequences(o, bounds) : o.narrow(1, 0, d.T);
  return {o.to(v_in.dtype()), S};
}

RecurrenceResult gated_linear_step(const torch::Tensor& q_in, const torch::Tensor& k_in,
                                   const torch::Tensor& v_in, const torch::Tensor& g_in,
                                   const torch::Tensor& state, double scale) {
  const std::string op = "gated_linear_step";
  HYLA_CHECK(q_in.dim() == 3 && k_in.sizes() == q_in.sizes(),
             "{}: q and k must both be [B, H, dk], got {} and {}", op, shape_str(q_in.sizes()), shape_str(k_in.sizes()));
  int64_t B = q_in.size(0), H = q_in.size(1), dk = q_in.size(2);
  HYLA_CHECK(v_in.dim() == 3 && v_in.size(0) == B && v_in.size(1) == H,
             "{}: v must be [B={}, H={}, dv], got {}", op, B, H, shape_str(v_in.sizes()));
  int64_t dv = v_in.size(2);
  std::vector<int64_t> gs{B, H}, gk{B, H, dk};
  bool per_key = g_in.sizes() == gk;
  HYLA_CHECK(per_key || g_in.sizes() == gs, "{}: g must be [B, H, dk] = {} or [B, H] = {}, got {}",
             op, shape_str(gk), shape_str(gs), shape_str(g_in.sizes()));
  auto ct = compute_dtype(q_in);
  auto S = initial_state_or_zeros(state, B, H, dk, dv, ct, q_in.device(), op);
  auto o = linear_step(q_in.to(ct) * resolve_scale(scale, dk), k_in.to(ct), v_in.to(ct),
                       g_in.to(ct), per_key, S);
  return {o.to(v_in.dtype()), S};
}

}  // namespace hyla::ops
