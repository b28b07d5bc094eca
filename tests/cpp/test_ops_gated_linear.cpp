// Gated linear attention (per-key-dim gates for DSLA, scalar decay for Lightning): the
// chunked and step forms against the float64 recurrence, and a gradient check.
#include <gtest/gtest.h>

#include "hyla/ops/gated_linear.h"
#include "hyla/util/error.h"
#include "mixer_testing.h"

namespace {

using hyla::testing::rel_err;
using namespace hyla::ops;

struct Case {
  int64_t B, T, H, dk, dv;
  bool per_key;
  double gate_scale;  // log gates are −gate_scale·softplus(randn); 50 reaches DSLA's clamp
  bool init_state;
  const char* name;  // the case in ctest's output (alphanumeric)
};

struct Inputs {
  torch::Tensor q, k, v, g, s0;
};

Inputs make(const Case& c) {
  auto o = hyla::testing::f64();
  Inputs in;
  in.q = torch::randn({c.B, c.T, c.H, c.dk}, o);
  in.k = torch::randn({c.B, c.T, c.H, c.dk}, o) / std::sqrt(double(c.dk));
  in.v = torch::randn({c.B, c.T, c.H, c.dv}, o);
  auto gs = c.per_key ? std::vector<int64_t>{c.B, c.T, c.H, c.dk} : std::vector<int64_t>{c.B, c.T, c.H};
  in.g = (-c.gate_scale * torch::softplus(torch::randn(gs, o))).clamp_min(-50);
  if (c.init_state) in.s0 = torch::randn({c.B, c.H, c.dk, c.dv}, o);
  return in;
}

torch::Tensor f32(const torch::Tensor& t) { return t.defined() ? t.to(torch::kFloat32) : t; }

class GatedLinearForms : public ::testing::TestWithParam<Case> {};

TEST_P(GatedLinearForms, ChunkedFloat32MatchesRecurrentFloat64) {
  torch::manual_seed(11);
  auto c = GetParam();
  auto in = make(c);
  RecurrenceOptions o64;
  o64.initial_state = in.s0;
  auto ref = gated_linear_recurrent(in.q, in.k, in.v, in.g, o64);
  RecurrenceOptions o32;
  o32.initial_state = f32(in.s0);
  auto ch = gated_linear_chunked(f32(in.q), f32(in.k), f32(in.v), f32(in.g), o32);
  ASSERT_EQ(ch.o.sizes(), ref.o.sizes());
  EXPECT_FALSE(ch.o.isnan().any().item<bool>());
  EXPECT_LE(rel_err(ch.o, ref.o), 1e-5);
  EXPECT_LE(rel_err(ch.state, ref.state), 1e-5);
  o64.chunk_size = 32;
  auto ch64 = gated_linear_chunked(in.q, in.k, in.v, in.g, o64);
  EXPECT_LE(rel_err(ch64.o, ref.o), 1e-10);
  EXPECT_LE(rel_err(ch64.state, ref.state), 1e-10);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, GatedLinearForms,
    ::testing::Values(Case{2, 100, 2, 16, 32, true, 0.1, false, "PerKeyGatesRaggedLength"},
                      Case{1, 64, 3, 8, 8, true, 50.0, true, "PerKeyGatesAtDslaClamp"},  // −50
                      Case{2, 1, 2, 8, 4, true, 1.0, true, "PerKeyGatesSingleToken"},
                      Case{2, 150, 2, 16, 16, false, 0.3, true, "ScalarDecayLightning"},
                      Case{1, 65, 1, 8, 8, false, 30.0, false, "ScalarDecayNearTotalForgetting"}),
    [](const ::testing::TestParamInfo<Case>& info) { return std::string(info.param.name); });

TEST(GatedLinearVarlen, PackedMatchesRecurrent) {
  torch::manual_seed(12);
  for (bool per_key : {true, false}) {
    std::vector<int64_t> lens{20, 0, 64, 71, 3};
    Case c{1, 158, 2, 8, 8, per_key, 0.5, false};
    auto in = make(c);
    auto cu = torch::tensor({0, 20, 20, 84, 155, 158}, torch::kInt64);
    RecurrenceOptions opt;
    opt.cu_seqlens = cu;
    opt.initial_state = torch::randn({5, c.H, c.dk, c.dv}, hyla::testing::f64());
    auto ref = gated_linear_recurrent(in.q, in.k, in.v, in.g, opt);
    auto opt32 = opt;
    opt32.initial_state = f32(opt.initial_state);
    auto ch = gated_linear_chunked(f32(in.q), f32(in.k), f32(in.v), f32(in.g), opt32);
    EXPECT_LE(rel_err(ch.o, ref.o), 1e-5) << "per_key " << per_key;
    EXPECT_LE(rel_err(ch.state, ref.state), 1e-5) << "per_key " << per_key;
    // Sequence 3 alone (its own initial state) reproduces its slice: state reset works.
    RecurrenceOptions one;
    one.initial_state = opt.initial_state.narrow(0, 3, 1);
    auto sl = [](const torch::Tensor& t) { return t.narrow(1, 84, 71); };
    auto r = gated_linear_recurrent(sl(in.q), sl(in.k), sl(in.v), sl(in.g), one);
    EXPECT_LE(rel_err(r.o, sl(ref.o)), 1e-12);
    EXPECT_LE(rel_err(r.state, ref.state.narrow(0, 3, 1)), 1e-12);
  }
}

TEST(GatedLinearStep, PrefillThenStepsEqualsFullRun) {
  torch::manual_seed(13);
  for (bool per_key : {true, false}) {
    Case c{2, 40, 2, 8, 8, per_key, 0.5, true};
    auto in = make(c);
    RecurrenceOptions o;
    o.initial_state = in.s0;
    auto full = gated_linear_chunked(in.q, in.k, in.v, in.g, o);
    auto pre = [](const torch::Tensor& t) { return t.narrow(1, 0, 37); };
    auto S = gated_linear_chunked(pre(in.q), pre(in.k), pre(in.v), pre(in.g), o).state;
    for (int64_t t = 37; t < c.T; ++t) {
      auto at = [&](const torch::Tensor& x) { return x.select(1, t); };
      auto r = gated_linear_step(at(in.q), at(in.k), at(in.v), at(in.g), S);
      S = r.state;
      EXPECT_LE(rel_err(r.o, at(full.o)), 1e-10);
    }
    EXPECT_LE(rel_err(S, full.state), 1e-10);
  }
}

TEST(GatedLinearGrad, ChunkedMatchesFiniteDifferences) {
  torch::manual_seed(14);
  for (bool per_key : {true, false}) {
    // Chunk 32 with T = 37: the per-key path uses two 16-token sub-chunks per chunk.
    Case c{1, 37, 1, 3, 2, per_key, 0.5, true};
    auto in = make(c);
    auto wo = torch::randn({c.B, c.T, c.H, c.dv}, hyla::testing::f64());
    auto ws = torch::randn({c.B, c.H, c.dk, c.dv}, hyla::testing::f64());
    auto f = [&](const std::vector<torch::Tensor>& x) {
      RecurrenceOptions o;
      o.initial_state = x[4];
      o.chunk_size = 32;
      auto r = gated_linear_chunked(x[0], x[1], x[2], x[3], o);
      return (r.o * wo).sum() + (r.state * ws).sum();
    };
    double err = hyla::testing::directional_grad_check_error(f, {in.q, in.k, in.v, in.g, in.s0}, 12);
    EXPECT_LE(err, 1e-6) << "per_key " << per_key;
  }
}

TEST(GatedLinearErrors, BadShapesNameTheTensor) {
  auto q = torch::randn({1, 5, 2, 4}), v = torch::randn({1, 5, 2, 3});
  try {
    gated_linear_chunked(q, q, v, torch::zeros({1, 5, 2, 3}));
    FAIL();
  } catch (const hyla::Error& e) {
    EXPECT_NE(std::string(e.what()).find("gated_linear_chunked: g must be"), std::string::npos) << e.what();
  }
  EXPECT_THROW(gated_linear_recurrent(q, q, torch::randn({1, 5, 3, 3}), torch::zeros({1, 5, 2})), hyla::Error);
  EXPECT_THROW(gated_linear_step(q.select(1, 0), q.select(1, 0), v.select(1, 0), torch::zeros({1, 3}), {}),
               hyla::Error);
}

}  // namespace
