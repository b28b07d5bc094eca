// The gated delta rule's chunked and step forms against its float64 recurrence
// (gdn.md; methods.md §2.6 test plan), plus a finite-difference gradient check.
#include <gtest/gtest.h>

#include "hyla/ops/gated_delta.h"
#include "hyla/ops/norms.h"
#include "hyla/util/error.h"
#include "mixer_testing.h"

namespace {

using hyla::testing::rel_err;
using namespace hyla::ops;

struct Case {
  int64_t B, T, H, HV, dk, dv;
  double decay;     // scale of the log decay: 0.05 ≈ long memory, 5 ≈ forget fast
  double beta_max;  // 1 (sigmoid) or 2 (negative eigenvalues allowed)
  bool init_state;
  const char* name;  // the case in ctest's output (alphanumeric)
};

struct Inputs {
  torch::Tensor q, k, v, g, beta, s0;
};

Inputs make(const Case& c, torch::ScalarType dt) {
  auto o = hyla::testing::f64();
  Inputs in;
  in.q = l2_normalize(torch::randn({c.B, c.T, c.H, c.dk}, o));
  in.k = l2_normalize(torch::randn({c.B, c.T, c.H, c.dk}, o));
  in.v = torch::randn({c.B, c.T, c.HV, c.dv}, o);
  in.g = -c.decay * torch::softplus(torch::randn({c.B, c.T, c.HV}, o));
  in.beta = c.beta_max * torch::sigmoid(torch::randn({c.B, c.T, c.HV}, o));
  if (c.init_state) in.s0 = torch::randn({c.B, c.HV, c.dk, c.dv}, o) * 0.5;
  for (auto* t : {&in.q, &in.k, &in.v, &in.g, &in.beta, &in.s0})
    if (t->defined()) *t = t->to(dt);
  return in;
}

RecurrenceOptions options(const Inputs& in, int64_t chunk = 64) {
  RecurrenceOptions o;
  o.initial_state = in.s0;
  o.chunk_size = chunk;
  return o;
}

class GatedDeltaForms : public ::testing::TestWithParam<Case> {};

TEST_P(GatedDeltaForms, ChunkedFloat32MatchesRecurrentFloat64) {
  torch::manual_seed(1);
  auto c = GetParam();
  auto in32 = make(c, torch::kFloat32);
  Inputs in64{in32.q.to(torch::kFloat64), in32.k.to(torch::kFloat64), in32.v.to(torch::kFloat64),
              in32.g.to(torch::kFloat64), in32.beta.to(torch::kFloat64),
              in32.s0.defined() ? in32.s0.to(torch::kFloat64) : torch::Tensor()};
  auto ref = gated_delta_recurrent(in64.q, in64.k, in64.v, in64.g, in64.beta, options(in64));
  auto ch = gated_delta_chunked(in32.q, in32.k, in32.v, in32.g, in32.beta, options(in32));
  ASSERT_EQ(ch.o.sizes(), ref.o.sizes());
  ASSERT_EQ(ch.state.sizes(), ref.state.sizes());
  EXPECT_EQ(ch.o.scalar_type(), torch::kFloat32);
  EXPECT_LE(rel_err(ch.o, ref.o), 1e-5);
  EXPECT_LE(rel_err(ch.state, ref.state), 1e-5);
  auto rec32 = gated_delta_recurrent(in32.q, in32.k, in32.v, in32.g, in32.beta, options(in32));
  EXPECT_LE(rel_err(rec32.o, ref.o), 1e-5);
  // float64 chunked is the same function as the float64 recurrence to rounding.
  auto ch64 = gated_delta_chunked(in64.q, in64.k, in64.v, in64.g, in64.beta, options(in64, 16));
  EXPECT_LE(rel_err(ch64.o, ref.o), 1e-10);
  EXPECT_LE(rel_err(ch64.state, ref.state), 1e-10);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, GatedDeltaForms,
    ::testing::Values(Case{2, 100, 2, 2, 16, 32, 0.5, 1, false, "RaggedLength100"},  // T not a multiple of 64
                      Case{1, 64, 1, 1, 32, 16, 0.05, 1, true, "ExactlyOneChunk"},
                      Case{2, 1, 2, 2, 8, 8, 0.5, 1, true, "SingleToken"},
                      Case{1, 130, 2, 4, 16, 16, 5.0, 1, true, "GroupedValueHeadsFastForgetting"},
                      Case{2, 77, 1, 3, 16, 8, 0.2, 2, false, "NegativeEigenvalues"}),  // 2σ
    [](const ::testing::TestParamInfo<Case>& info) { return std::string(info.param.name); });

TEST(GatedDeltaVarlen, PackedMatchesRecurrentAndSeparateRuns) {
  torch::manual_seed(2);
  std::vector<int64_t> lens{37, 64, 1, 100, 0, 5};
  int64_t total = 0;
  for (auto l : lens) total += l;
  Case c{1, total, 2, 4, 16, 16, 0.5, 1, false, "packed"};
  auto in = make(c, torch::kFloat64);
  auto cu = torch::zeros({int64_t(lens.size()) + 1}, torch::kInt64);
  for (size_t i = 0; i < lens.size(); ++i) cu[i + 1] = cu[i].item<int64_t>() + lens[i];
  int64_t N = int64_t(lens.size());
  auto s0 = torch::randn({N, c.HV, c.dk, c.dv}, hyla::testing::f64());
  RecurrenceOptions opt;
  opt.cu_seqlens = cu;
  opt.initial_state = s0;
  auto ref = gated_delta_recurrent(in.q, in.k, in.v, in.g, in.beta, opt);
  auto f32 = [](const torch::Tensor& t) { return t.to(torch::kFloat32); };
  RecurrenceOptions opt32 = opt;
  opt32.initial_state = f32(s0);
  auto ch = gated_delta_chunked(f32(in.q), f32(in.k), f32(in.v), f32(in.g), f32(in.beta), opt32);
  EXPECT_LE(rel_err(ch.o, ref.o), 1e-5);
  EXPECT_LE(rel_err(ch.state, ref.state), 1e-5);
  // Each sequence alone gives the same output and final state: the state is reset.
  int64_t start = 0;
  for (int64_t n = 0; n < N; ++n) {
    auto sl = [&](const torch::Tensor& t) { return t.narrow(1, start, lens[n]); };
    RecurrenceOptions one;
    one.initial_state = s0.narrow(0, n, 1);
    auto r = gated_delta_recurrent(sl(in.q), sl(in.k), sl(in.v), sl(in.g), sl(in.beta), one);
    if (lens[n] > 0) EXPECT_LE(rel_err(r.o, sl(ref.o)), 1e-12) << "sequence " << n;
    EXPECT_LE(rel_err(r.state, ref.state.narrow(0, n, 1)), 1e-12) << "sequence " << n;
    start += lens[n];
  }
}

TEST(GatedDeltaStep, PrefillThenStepsEqualsFullRun) {
  torch::manual_seed(3);
  Case c{2, 70, 2, 4, 16, 8, 0.5, 1, true};
  auto in = make(c, torch::kFloat32);
  auto full = gated_delta_chunked(in.q, in.k, in.v, in.g, in.beta, options(in));
  int64_t t0 = 66;
  auto pre = [&](const torch::Tensor& t) { return t.narrow(1, 0, t0); };
  auto pr = gated_delta_chunked(pre(in.q), pre(in.k), pre(in.v), pre(in.g), pre(in.beta), options(in));
  auto S = pr.state;
  for (int64_t t = t0; t < c.T; ++t) {
    auto at = [&](const torch::Tensor& x) { return x.select(1, t); };
    auto r = gated_delta_step(at(in.q), at(in.k), at(in.v), at(in.g), at(in.beta), S);
    S = r.state;
    EXPECT_LE(rel_err(r.o, at(full.o)), 1e-5) << "token " << t;
  }
  EXPECT_LE(rel_err(S, full.state), 1e-5);
}

TEST(GatedDeltaGrad, ChunkedMatchesFiniteDifferences) {
  torch::manual_seed(4);
  // Chunk 4 over T = 10: three chunks, the last one padded; GVA with 2 value heads.
  Case c{1, 10, 1, 2, 4, 3, 0.5, 1, true};
  auto in = make(c, torch::kFloat64);
  auto wo = torch::randn({c.B, c.T, c.HV, c.dv}, hyla::testing::f64());
  auto ws = torch::randn({c.B, c.HV, c.dk, c.dv}, hyla::testing::f64());
  auto f = [&](const std::vector<torch::Tensor>& x) {
    RecurrenceOptions o;
    o.initial_state = x[5];
    o.chunk_size = 4;
    auto r = gated_delta_chunked(x[0], x[1], x[2], x[3], x[4], o);
    return (r.o * wo).sum() + (r.state * ws).sum();
  };
  double err = hyla::testing::grad_check_error(f, {in.q, in.k, in.v, in.g, in.beta, in.s0});
  EXPECT_LE(err, 1e-6);
}

TEST(GatedDeltaErrors, BadShapesNameTheTensor) {
  auto q = torch::randn({1, 5, 2, 4}), v = torch::randn({1, 5, 3, 4}), g = torch::zeros({1, 5, 3});
  try {
    gated_delta_chunked(q, q, v, g, g);
    FAIL() << "HV=3 with H=2 must be rejected";
  } catch (const hyla::Error& e) {
    EXPECT_NE(std::string(e.what()).find("multiple"), std::string::npos) << e.what();
  }
  auto v4 = torch::randn({1, 5, 4, 4});
  auto g4 = torch::zeros({1, 5, 4});
  EXPECT_THROW(gated_delta_chunked(q, q.narrow(1, 0, 4), v4, g4, g4), hyla::Error);
  EXPECT_THROW(gated_delta_recurrent(q, q, v4, g4, g4.narrow(1, 0, 4)), hyla::Error);
  RecurrenceOptions bad;
  bad.initial_state = torch::zeros({1, 4, 4, 5});
  try {
    gated_delta_chunked(q, q, v4, g4, g4, bad);
    FAIL();
  } catch (const hyla::Error& e) {
    EXPECT_NE(std::string(e.what()).find("initial_state"), std::string::npos) << e.what();
  }
  RecurrenceOptions cu;
  cu.cu_seqlens = torch::tensor({0, 3, 4}, torch::kInt64);  // does not reach 5
  EXPECT_THROW(gated_delta_chunked(q, q, v4, g4, g4, cu), hyla::Error);
}

}  // namespace
