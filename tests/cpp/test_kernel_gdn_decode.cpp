// The fused GDN decode / verify step (kernels/gdn_decode.h) against float64 math written
// here (conv window, SiLU, L2 norm, gates, the float64 recurrent form of the delta rule,
// gated RMSNorm), and against the LibTorch reference composition.
// HYLA_TEST_DEVICE=cuda runs the CUDA kernel (and fails if it would fall back); the CPU
// run (CI) checks the reference composition against the same oracle.
#include <gtest/gtest.h>

#ifdef HYLA_CUDA
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

#include "hyla/kernels/gdn_decode.h"
#include "hyla/ops/gated_delta.h"
#include "mixer_testing.h"

namespace {

using hyla::testing::rel_err;
using namespace hyla::kernels;

struct Case {
  int64_t B, T, H, HV, dk, dv, W;  // W = 0: no short conv
  bool bf16, gate, conv_bias, neg_eigval;
  const char* name;
};

// Fresh random inputs in float64 on the CPU; `cast` moves them to the test device/dtype.
GdnDecodeInputs random_inputs(const Case& c) {
  auto o = torch::TensorOptions().dtype(torch::kFloat64);
  int64_t Ck = c.H * c.dk, Cv = c.HV * c.dv;
  GdnDecodeInputs in;
  in.q = torch::randn({c.B, c.T, Ck}, o);
  in.k = torch::randn({c.B, c.T, Ck}, o);
  in.v = torch::randn({c.B, c.T, Cv}, o);
  in.a = torch::randn({c.B, c.T, c.HV}, o);
  in.b = torch::randn({c.B, c.T, c.HV}, o);
  if (c.gate) in.gate = torch::randn({c.B, c.T, Cv}, o);
  if (c.W > 0) {
    in.conv_q_w = torch::randn({Ck, 1, c.W}, o) * 0.5;
    in.conv_k_w = torch::randn({Ck, 1, c.W}, o) * 0.5;
    in.conv_v_w = torch::randn({Cv, 1, c.W}, o) * 0.5;
    if (c.conv_bias) {
      in.conv_q_b = torch::randn({Ck}, o) * 0.1;
      in.conv_k_b = torch::randn({Ck}, o) * 0.1;
      in.conv_v_b = torch::randn({Cv}, o) * 0.1;
    }
    in.conv_q = torch::randn({c.B, Ck, c.W - 1}, o);
    in.conv_k = torch::randn({c.B, Ck, c.W - 1}, o);
    in.conv_v = torch::randn({c.B, Cv, c.W - 1}, o);
  }
  in.A_log = torch::empty({c.HV}, o).uniform_(0, 16).clamp_min(0.5).log();
  in.dt_bias = torch::randn({c.HV}, o) - 3;
  in.norm_weight = 1 + 0.2 * torch::randn({c.dv}, o);
  in.S = torch::randn({c.B, c.HV, c.dk, c.dv}, o) * 0.3;
  in.H = c.H, in.HV = c.HV, in.dk = c.dk, in.dv = c.dv;
  in.norm_eps = 1e-6;
  in.allow_neg_eigval = c.neg_eigval;
  return in;
}

// Activations and parameters in `dt` on `dev`; the state stays float32.
GdnDecodeInputs cast(const GdnDecodeInputs& x, torch::ScalarType dt, torch::Device dev) {
  GdnDecodeInputs y = x;
  for (auto* t : {&y.q, &y.k, &y.v, &y.a, &y.b, &y.gate, &y.conv_q_w, &y.conv_k_w, &y.conv_v_w, &y.conv_q_b,
                  &y.conv_k_b, &y.conv_v_b, &y.conv_q, &y.conv_k, &y.conv_v, &y.A_log, &y.dt_bias, &y.norm_weight})
    if (t->defined()) *t = t->to(dev, dt);
  y.S = x.S.to(dev, torch::kFloat32);
  return y;
}

// Inputs as the tested code sees them (rounded to dt), back in float64 on the CPU.
GdnDecodeInputs as_f64(const GdnDecodeInputs& x) {
  GdnDecodeInputs y = cast(x, torch::kFloat64, torch::kCPU);
  y.S = x.S.to(torch::kCPU, torch::kFloat64);
  return y;
}

struct Oracle {
  torch::Tensor o, S, S_steps, tails_q;  // tails_q: the q tail after every token [B, T, C, W−1]
};

torch::Tensor silu64(const torch::Tensor& x) { return x / (1 + torch::exp(-x)); }

// Causal conv of x [B, T, C] from tail [B, C, W−1]: y_t = bias + Σ_i w_i · window_i, where
// window = (tail, x_0 … x_t) restricted to its last W entries; also the tail after each t.
std::pair<torch::Tensor, torch::Tensor> conv64(const torch::Tensor& x, const torch::Tensor& w3,
                                               const torch::Tensor& bias, const torch::Tensor& tail) {
  if (!w3.defined()) return {silu64(x), {}};
  int64_t T = x.size(1), W = w3.size(-1);
  auto w = w3.reshape({w3.size(0), W});
  auto seq = torch::cat({tail.transpose(1, 2), x}, 1);  // [B, W−1+T, C]
  std::vector<torch::Tensor> ys, tails;
  for (int64_t t = 0; t < T; ++t) {
    auto win = seq.narrow(1, t, W);  // inputs t−W+1 … t
    auto y = (win * w.t().unsqueeze(0)).sum(1);
    if (bias.defined()) y = y + bias;
    ys.push_back(silu64(y));
    tails.push_back(seq.narrow(1, t + 1, W - 1).transpose(1, 2));
  }
  return {torch::stack(ys, 1), torch::stack(tails, 1)};
}

// gdn.md steps 1–7 in float64, the delta rule by ops::gated_delta_recurrent (the
// recurrent form, token by token), one prefix per token for the per-step states.
Oracle oracle(const GdnDecodeInputs& in) {
  int64_t B = in.q.size(0), T = in.q.size(1);
  auto [q, tq] = conv64(in.q, in.conv_q_w, in.conv_q_b, in.conv_q);
  auto k = conv64(in.k, in.conv_k_w, in.conv_k_b, in.conv_k).first;
  auto v = conv64(in.v, in.conv_v_w, in.conv_v_b, in.conv_v).first.view({B, T, in.HV, in.dv});
  q = q.view({B, T, in.H, in.dk});
  k = k.view({B, T, in.H, in.dk});
  q = q / (q.square().sum(-1, true) + 1e-6).sqrt();
  k = k / (k.square().sum(-1, true) + 1e-6).sqrt();
  auto sp = torch::log1p(torch::exp(in.a + in.dt_bias));
  auto g = -in.A_log.exp() * sp;
  auto beta = (in.allow_neg_eigval ? 2.0 : 1.0) / (1 + torch::exp(-in.b));
  hyla::ops::RecurrenceOptions opt;
  opt.initial_state = in.S;
  auto rec = hyla::ops::gated_delta_recurrent(q, k, v, g, beta, opt);
  std::vector<torch::Tensor> steps;
  for (int64_t t = 1; t <= T; ++t)
    steps.push_back(hyla::ops::gated_delta_recurrent(q.narrow(1, 0, t), k.narrow(1, 0, t), v.narrow(1, 0, t),
                                                     g.narrow(1, 0, t), beta.narrow(1, 0, t), opt).state);
  auto o = rec.o;  // [B, T, HV, dv]
  auto y = o / (o.square().mean(-1, true) + in.norm_eps).sqrt() * in.norm_weight;
  if (in.gate.defined()) y = y * silu64(in.gate.view({B, T, in.HV, in.dv}));
  return {y, rec.state, torch::stack(steps, 1), tq};
}

class GdnDecode : public ::testing::TestWithParam<Case> {};

TEST_P(GdnDecode, MatchesFloat64OracleAndReference) {
  auto c = GetParam();
  auto dev = hyla::testing::test_device();
  auto dt = c.bf16 ? torch::kBFloat16 : torch::kFloat32;
  torch::NoGradGuard ng;
  auto in = cast(random_inputs(c), dt, dev);
  in.keep_steps = c.T > 1;
  auto ref64 = oracle(as_f64(in));
  GdnDecodeResult r;
  if (dev.is_cuda()) {
    ASSERT_TRUE(gdn_decode_kernel_supports(in)) << "the fused kernel must take this case on CUDA";
    auto ref = gdn_decode_reference(in);  // the LibTorch composition, same dtype
    // Out of place into NaN-poisoned buffers: every element must be written.
    auto nan = [](std::vector<int64_t> shape, torch::TensorOptions o) { return torch::full(shape, NAN, o); };
    in.out = nan({c.B, c.T, c.HV, c.dv}, in.q.options());
    in.S_out = nan(in.S.sizes().vec(), in.S.options());
    if (in.keep_steps) in.S_steps_out = nan({c.B, c.T, c.HV, c.dk, c.dv}, in.S.options());
    r = gdn_decode_kernel(in);
    EXPECT_EQ(r.S.data_ptr(), in.S_out.data_ptr());
    double vs_ref = rel_err(r.o, ref.o), vs_ref_s = rel_err(r.S, ref.S);
    EXPECT_LE(vs_ref, c.bf16 ? 2e-2 : 1e-4);
    EXPECT_LE(vs_ref_s, c.bf16 ? 1e-2 : 1e-4);
    std::printf("  %s: kernel vs LibTorch reference: o %.2e, S %.2e\n", c.name, vs_ref, vs_ref_s);
    // In place (the CUDA-graph decode mode): the same numbers, written into the inputs.
    auto ip = in;
    ip.in_place = true;
    ip.out = ip.S_out = ip.S_steps_out = torch::Tensor();
    ip.S = in.S.clone();
    if (c.W > 0) ip.conv_q = in.conv_q.clone(), ip.conv_k = in.conv_k.clone(), ip.conv_v = in.conv_v.clone();
    auto r2 = gdn_decode_kernel(ip);
    EXPECT_EQ(r2.S.data_ptr(), ip.S.data_ptr());
    EXPECT_TRUE(torch::equal(r2.S, r.S));
    EXPECT_TRUE(torch::equal(r2.o, r.o));
    if (c.W > 0) {
      EXPECT_TRUE(torch::equal(ip.conv_q, r.conv_q));
      EXPECT_TRUE(torch::equal(ip.conv_v, r.conv_v));
    }
  } else {
    r = gdn_decode_reference(in);
  }
  ASSERT_EQ(r.o.sizes(), ref64.o.sizes());
  EXPECT_FALSE(r.o.isnan().any().item<bool>());
  EXPECT_FALSE(r.S.isnan().any().item<bool>());
  double eo = rel_err(r.o.cpu(), ref64.o), es = rel_err(r.S.cpu(), ref64.S);
  EXPECT_LE(eo, 1e-2);
  EXPECT_LE(es, 1e-2);
  if (c.T > 1) {
    EXPECT_LE(rel_err(r.S_steps.cpu(), ref64.S_steps), 1e-2);
    if (c.W > 0) {
      EXPECT_LE(rel_err(r.conv_q_steps.cpu(), ref64.tails_q), 1e-6);
    }
  }
  if (c.W > 0) {
    EXPECT_LE(rel_err(r.conv_q.cpu(), ref64.tails_q.select(1, c.T - 1)), 1e-6);
  }
  std::printf("  %s: rel err o %.2e, S %.2e (%s)\n", c.name, eo, es, dev.is_cuda() ? "kernel" : "reference");
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, GdnDecode,
    ::testing::Values(Case{1, 1, 2, 2, 64, 64, 4, true, true, false, false, "Bf16Dk64Batch1"},
                      Case{3, 1, 2, 4, 80, 80, 4, false, true, true, false, "F32Dk80GroupedBatch3"},
                      Case{5, 1, 1, 2, 128, 128, 4, true, true, false, true, "Bf16Dk128NegEigBatch5"},
                      Case{3, 1, 2, 2, 128, 64, 0, true, false, false, false, "Bf16NoConvNoGate"},
                      Case{3, 5, 2, 4, 64, 128, 4, true, true, true, false, "VerifyFiveTokensBf16"},
                      Case{1, 16, 1, 1, 80, 80, 3, false, true, false, false, "VerifySixteenTokensF32"}),
    [](const ::testing::TestParamInfo<Case>& info) { return std::string(info.param.name); });

#ifdef HYLA_CUDA
// CUDA-graph decoding: one in-place step captured once and replayed on new inputs copied
// into the same buffers equals the reference run step by step.
TEST(GdnDecodeGraph, CapturedInPlaceStepReplaysLikeReferenceSteps) {
  auto dev = hyla::testing::test_device();
  if (!dev.is_cuda()) GTEST_SKIP() << "CUDA graphs need HYLA_TEST_DEVICE=cuda";
  torch::NoGradGuard ng;
  Case c{3, 1, 2, 4, 80, 80, 4, true, true, false, false, "graph"};
  auto in = cast(random_inputs(c), torch::kBFloat16, dev);
  in.in_place = true;
  in.out = torch::empty({c.B, 1, c.HV, c.dv}, in.q.options());
  auto ref = in;  // the reference's states evolve functionally beside the graph's
  ref.in_place = false;
  ref.S = in.S.clone(), ref.conv_q = in.conv_q.clone(), ref.conv_k = in.conv_k.clone(), ref.conv_v = in.conv_v.clone();
  at::cuda::CUDAGraph graph;
  {
    auto side = c10::cuda::getStreamFromPool();
    side.synchronize();
    c10::cuda::CUDAStreamGuard guard(side);
    graph.capture_begin();
    gdn_decode_kernel(in);  // captured, not run
    graph.capture_end();
  }
  for (int step = 0; step < 4; ++step) {
    auto fresh = cast(random_inputs(c), torch::kBFloat16, dev);
    for (auto [dst, src] : {std::pair{&in.q, &fresh.q}, {&in.k, &fresh.k}, {&in.v, &fresh.v}, {&in.a, &fresh.a},
                            {&in.b, &fresh.b}, {&in.gate, &fresh.gate}})
      dst->copy_(*src);
    graph.replay();
    ref.q = fresh.q, ref.k = fresh.k, ref.v = fresh.v, ref.a = fresh.a, ref.b = fresh.b, ref.gate = fresh.gate;
    auto r = gdn_decode_reference(ref);
    ref.S = r.S, ref.conv_q = r.conv_q, ref.conv_k = r.conv_k, ref.conv_v = r.conv_v;
    torch::cuda::synchronize();
    EXPECT_LE(rel_err(in.out, r.o), 2e-2) << "step " << step;
    EXPECT_LE(rel_err(in.S, r.S), 1e-2) << "step " << step;
    EXPECT_TRUE(torch::equal(in.conv_v, r.conv_v)) << "step " << step;
  }
}
#endif

}  // namespace
