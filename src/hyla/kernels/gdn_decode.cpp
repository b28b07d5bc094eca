#include "hyla/kernels/gdn_decode.h"

#include <cmath>
#include <cstdlib>
#include <cstring>

#ifdef HYLA_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

#include "hyla/kernels/gdn_decode_launch.h"
#include "hyla/ops/gated_delta.h"
#include "hyla/ops/norms.h"
#include "hyla/ops/recurrence.h"
#include "hyla/ops/short_conv.h"
#include "hyla/util/error.h"

namespace hyla::kernels {

namespace {

[[maybe_unused]] double resolve_scale(double scale, int64_t dk) { return scale < 0 ? 1.0 / std::sqrt(double(dk)) : scale; }

bool has_conv(const GdnDecodeInputs& in) { return in.conv_q_w.defined(); }

[[maybe_unused]] int64_t conv_window(const GdnDecodeInputs& in) { return has_conv(in) ? in.conv_q_w.size(-1) : 0; }

// HYLA_GDN_DECODE=reference turns the fused path off (A/B checks of the kernel).
[[maybe_unused]] bool fused_path_enabled() {
  static const bool on = [] {
    const char* v = std::getenv("HYLA_GDN_DECODE");
    return !(v && std::strcmp(v, "reference") == 0);
  }();
  return on;
}

// Token t of a [B, T, C] projection as [B, 1, C].
torch::Tensor token(const torch::Tensor& x, int64_t t) { return x.narrow(1, t, 1); }

// One token of the reference: gdn.md step 1 for one projection, the tail updated.
torch::Tensor conv_token(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& bias,
                         torch::Tensor& tail) {
  if (!w.defined()) return torch::silu(x);
  auto r = ops::short_conv(x, w, bias, tail, {}, true);
  tail = r.tail.to(x.dtype());
  return r.y;
}

}  // namespace

GdnDecodeResult gdn_decode_reference(const GdnDecodeInputs& in) {
  int64_t B = in.q.size(0), T = in.q.size(1), H = in.H, HV = in.HV, dk = in.dk, dv = in.dv;
  GdnDecodeResult r;
  r.S = in.S;
  r.conv_q = in.conv_q, r.conv_k = in.conv_k, r.conv_v = in.conv_v;
  std::vector<torch::Tensor> outs, states, tq, tk, tv;
  for (int64_t t = 0; t < T; ++t) {
    auto q = conv_token(token(in.q, t), in.conv_q_w, in.conv_q_b, r.conv_q).view({B, H, dk});
    auto k = conv_token(token(in.k, t), in.conv_k_w, in.conv_k_b, r.conv_k).view({B, H, dk});
    auto v = conv_token(token(in.v, t), in.conv_v_w, in.conv_v_b, r.conv_v).view({B, HV, dv});
    q = ops::l2_normalize(q, 1e-6);
    k = ops::l2_normalize(k, 1e-6);
    auto ct = ops::compute_dtype(in.q);
    auto g = -in.A_log.to(ct).exp() * torch::softplus(token(in.a, t).squeeze(1).to(ct) + in.dt_bias.to(ct));
    auto beta = torch::sigmoid(token(in.b, t).squeeze(1).to(ct));
    if (in.allow_neg_eigval) beta = beta * 2;
    auto step = ops::gated_delta_step(q, k, v, g, beta, r.S, in.scale);
    r.S = step.state;
    auto o = in.gate.defined()
                 ? ops::rms_norm_gated(step.o, token(in.gate, t).view({B, HV, dv}), in.norm_weight, in.norm_eps, "silu")
                 : ops::rms_norm(step.o, in.norm_weight, in.norm_eps);
    outs.push_back(o);
    if (in.keep_steps) {
      states.push_back(r.S);
      if (has_conv(in)) tq.push_back(r.conv_q), tk.push_back(r.conv_k), tv.push_back(r.conv_v);
    }
  }
  r.o = torch::stack(outs, 1);
  if (in.keep_steps) {
    r.S_steps = torch::stack(states, 1);
    if (has_conv(in)) {
      r.conv_q_steps = torch::stack(tq, 1);
      r.conv_k_steps = torch::stack(tk, 1);
      r.conv_v_steps = torch::stack(tv, 1);
    }
  }
  return r;
}

bool gdn_decode_kernel_supports(const GdnDecodeInputs& in) {
#ifdef HYLA_CUDA
  if (!fused_path_enabled() || !in.q.defined() || !in.q.is_cuda() || !in.S.defined()) return false;
  auto dt = in.q.scalar_type();
  if (dt != torch::kBFloat16 && dt != torch::kFloat32) return false;
  // In place, the kernel writes the given buffers, which must then be contiguous;
  // otherwise it reads contiguous copies.
  if (in.S.scalar_type() != torch::kFloat32 || (in.in_place && !in.S.is_contiguous())) return false;
  if (in.q.dim() != 3 || in.q.size(1) < 1 || in.q.size(1) > kGdnDecodeMaxTokens) return false;
  if (!gdn_decode_dims_supported(int(in.dk), int(in.dv))) return false;
  auto same = [&](const torch::Tensor& t, bool contiguous) {
    return !t.defined() || (t.scalar_type() == dt && t.device() == in.q.device() && (!contiguous || t.is_contiguous()));
  };
  for (auto* t : {&in.q, &in.k, &in.v, &in.a, &in.b, &in.gate})
    if (!same(*t, false) || (t->defined() && t->stride(-1) != 1)) return false;
  for (auto* t : {&in.A_log, &in.dt_bias, &in.norm_weight, &in.conv_q_w, &in.conv_k_w, &in.conv_v_w,
                  &in.conv_q_b, &in.conv_k_b, &in.conv_v_b})
    if (!same(*t, true)) return false;
  for (auto* t : {&in.conv_q, &in.conv_k, &in.conv_v})
    if (!same(*t, in.in_place)) return false;
  if (has_conv(in) && (!in.conv_q.defined() || !in.conv_k.defined() || !in.conv_v.defined() ||
                       !in.conv_k_w.defined() || !in.conv_v_w.defined() || conv_window(in) > 8))
    return false;
  return true;
#else
  (void)in;
  return false;
#endif
}

#ifdef HYLA_CUDA
namespace {

void check_kernel_shapes(const GdnDecodeInputs& in) {
  const std::string op = "gdn_decode_kernel";
  int64_t B = in.q.size(0), T = in.q.size(1), Ck = in.H * in.dk, Cv = in.HV * in.dv;
  HYLA_CHECK(in.H > 0 && in.HV % in.H == 0, "{}: value heads {} must be a multiple of heads {}", op, in.HV, in.H);
  auto want = [&](const torch::Tensor& t, std::vector<int64_t> shape, const char* name) {
    HYLA_CHECK(t.sizes() == shape, "{}: {} must be {}, got {}", op, name, ops::shape_str(shape),
               ops::shape_str(t.sizes()));
  };
  want(in.q, {B, T, Ck}, "q");
  want(in.k, {B, T, Ck}, "k");
  want(in.v, {B, T, Cv}, "v");
  want(in.a, {B, T, in.HV}, "a");
  want(in.b, {B, T, in.HV}, "b");
  if (in.gate.defined()) want(in.gate, {B, T, Cv}, "gate");
  want(in.S, {B, in.HV, in.dk, in.dv}, "S");
  want(in.A_log, {in.HV}, "A_log");
  want(in.dt_bias, {in.HV}, "dt_bias");
  want(in.norm_weight, {in.dv}, "norm_weight");
  if (has_conv(in)) {
    int64_t W = conv_window(in);
    for (auto [w, C, name] : {std::tuple{&in.conv_q_w, Ck, "conv_q_w"}, {&in.conv_k_w, Ck, "conv_k_w"},
                              {&in.conv_v_w, Cv, "conv_v_w"}})
      HYLA_CHECK(w->numel() == C * W && w->size(0) == C, "{}: {} must be [{}, {}]", op, name, C, W);
    want(in.conv_q, {B, Ck, W - 1}, "conv_q");
    want(in.conv_k, {B, Ck, W - 1}, "conv_k");
    want(in.conv_v, {B, Cv, W - 1}, "conv_v");
    for (auto [bias, C] : {std::pair{&in.conv_q_b, Ck}, {&in.conv_k_b, Ck}, {&in.conv_v_b, Cv}})
      if (bias->defined()) want(*bias, {C}, "conv bias");
  }
}

const void* ptr(const torch::Tensor& t) { return t.defined() ? t.data_ptr() : nullptr; }

}  // namespace
#endif

GdnDecodeResult gdn_decode_kernel(const GdnDecodeInputs& in) {
  HYLA_CHECK(gdn_decode_kernel_supports(in),
             "gdn_decode_kernel: inputs not supported by the fused kernel (needs a CUDA build, CUDA "
             "bf16/float32 tensors of one dtype, head dims 64/80/128, at most 16 tokens)");
#ifdef HYLA_CUDA
  check_kernel_shapes(in);
  c10::cuda::CUDAGuard guard(in.q.device());
  int64_t B = in.q.size(0), T = in.q.size(1);
  GdnDecodeResult r;
  // A preallocated output must be exactly what the kernel would allocate.
  auto output = [&](const torch::Tensor& given, std::vector<int64_t> shape, torch::TensorOptions opt,
                    const char* name) {
    if (!given.defined()) return torch::empty(shape, opt);
    HYLA_CHECK(given.sizes() == shape && given.is_contiguous() && given.dtype() == opt.dtype() &&
                   given.device() == opt.device(),
               "gdn_decode_kernel: {} must be a contiguous {} tensor of shape {}", name,
               c10::toString(opt.dtype().toScalarType()), ops::shape_str(shape));
    return given;
  };
  r.o = output(in.out, {B, T, in.HV, in.dv}, in.q.options(), "out");
  bool conv = has_conv(in);
  // Out of place: read contiguous inputs (no copy when they already are), write new tensors.
  auto S_in = in.S.contiguous();
  torch::Tensor tq, tk, tv;
  r.S = in.in_place ? in.S : output(in.S_out, in.S.sizes().vec(), in.S.options(), "S_out");
  if (conv) {
    tq = in.conv_q.contiguous(), tk = in.conv_k.contiguous(), tv = in.conv_v.contiguous();
    r.conv_q = in.in_place ? in.conv_q : torch::empty_like(tq);
    r.conv_k = in.in_place ? in.conv_k : torch::empty_like(tk);
    r.conv_v = in.in_place ? in.conv_v : torch::empty_like(tv);
  }
  if (in.keep_steps) {
    r.S_steps = output(in.S_steps_out, {B, T, in.HV, in.dk, in.dv}, in.S.options(), "S_steps_out");
    if (conv) {
      auto steps = [&](const torch::Tensor& tail) {
        return torch::empty({B, T, tail.size(1), tail.size(2)}, tail.options());
      };
      r.conv_q_steps = steps(in.conv_q), r.conv_k_steps = steps(in.conv_k), r.conv_v_steps = steps(in.conv_v);
    }
  }
  GdnDecodeParams p;
  p.B = int(B), p.T = int(T), p.H = int(in.H), p.HV = int(in.HV), p.dk = int(in.dk), p.dv = int(in.dv);
  p.W = int(conv_window(in));
  p.bf16 = in.q.scalar_type() == torch::kBFloat16;
  p.q = ptr(in.q), p.q_sb = in.q.stride(0), p.q_st = in.q.stride(1);
  p.k = ptr(in.k), p.k_sb = in.k.stride(0), p.k_st = in.k.stride(1);
  p.v = ptr(in.v), p.v_sb = in.v.stride(0), p.v_st = in.v.stride(1);
  p.a = ptr(in.a), p.a_sb = in.a.stride(0), p.a_st = in.a.stride(1);
  p.beta_logit = ptr(in.b), p.b_sb = in.b.stride(0), p.b_st = in.b.stride(1);
  if (in.gate.defined()) p.gate = ptr(in.gate), p.gate_sb = in.gate.stride(0), p.gate_st = in.gate.stride(1);
  if (conv) {
    p.wq = ptr(in.conv_q_w), p.wk = ptr(in.conv_k_w), p.wv = ptr(in.conv_v_w);
    p.bq = ptr(in.conv_q_b), p.bk = ptr(in.conv_k_b), p.bv = ptr(in.conv_v_b);
    p.tq_in = ptr(tq), p.tk_in = ptr(tk), p.tv_in = ptr(tv);
    p.tq_out = r.conv_q.data_ptr(), p.tk_out = r.conv_k.data_ptr(), p.tv_out = r.conv_v.data_ptr();
    if (in.keep_steps)
      p.tq_steps = r.conv_q_steps.data_ptr(), p.tk_steps = r.conv_k_steps.data_ptr(),
      p.tv_steps = r.conv_v_steps.data_ptr();
  }
  p.A_log = ptr(in.A_log), p.dt_bias = ptr(in.dt_bias), p.norm_w = ptr(in.norm_weight);
  p.S_in = S_in.data_ptr<float>();
  p.S_out = r.S.data_ptr<float>();
  p.S_steps = in.keep_steps ? r.S_steps.data_ptr<float>() : nullptr;
  p.out = r.o.data_ptr();
  p.scale = float(resolve_scale(in.scale, in.dk));
  p.norm_eps = float(in.norm_eps);
  p.beta_mul = in.allow_neg_eigval ? 2.f : 1.f;
  const char* err = launch_gdn_decode(p, c10::cuda::getCurrentCUDAStream().stream());
  HYLA_CHECK(err == nullptr, "gdn_decode_kernel: launch failed: {}", err ? err : "");
  return r;
#else
  fail("gdn_decode_kernel: this build has no CUDA kernels (HYLA_CUDA=OFF)");
#endif
}

}  // namespace hyla::kernels
