// The GDN, DSLA and HypeNet mixers: prefill + decode equals one full forward, packed
// sequences equal separate runs, parameter names, the factory, and bad configurations.
#include <gtest/gtest.h>

#include "hyla/model/decoder.h"
#include "hyla/model/mixers/dsla.h"
#include "hyla/model/mixers/gdn.h"
#include "hyla/model/mixers/hypenet.h"
#include "hyla/model/mixers/registry.h"
#include "hyla/util/error.h"
#include "mixer_testing.h"

namespace {

using namespace hyla::model;
using hyla::testing::rel_err;

MixerConfig small_config(const std::string& kind) {
  MixerConfig c;
  c.name = "test " + kind;
  c.hidden = 32;
  c.n_heads = 2;
  c.head_k_dim = 8;
  c.head_v_dim = 8;
  c.init_std = 0.2;  // larger than 0.02 so the recurrences see non-trivial inputs
  if (kind == "gdn") {
    c.n_value_heads = 4;
    c.head_v_dim = 6;
    c.norm_eps = 1e-6;
  }
  if (kind == "hypenet") {
    c.n_heads = 4;
    c.n_kv_heads = 2;
    c.use_rope = true;
    c.rope.theta = 10000;
  }
  c.chunk_size = 16;
  return c;
}

Mixer build(const std::string& kind, bool rope = true) {
  auto c = small_config(kind);
  c.use_rope = c.use_rope && rope;
  auto m = make_mixer(kind, c);
  m->to(hyla::testing::test_device(), torch::kFloat64);
  return m;
}

class MixerKinds : public ::testing::TestWithParam<std::string> {};

TEST_P(MixerKinds, PrefillThenDecodeEqualsFullForward) {
  torch::manual_seed(31);
  auto m = build(GetParam());
  torch::NoGradGuard ng;
  auto x = torch::randn({2, 45, 32}, hyla::testing::f64());
  auto full = m->forward(x, {});
  LayerCache cache;
  MixerContext ctx;
  ctx.cache = &cache;
  // Prefill 20 tokens, then a 17-token chunk on the cache, then one token at a time.
  std::vector<torch::Tensor> parts{m->forward(x.narrow(1, 0, 20), ctx),
                                   m->forward(x.narrow(1, 20, 17), ctx)};
  for (int64_t t = 37; t < 45; ++t) parts.push_back(m->forward(x.narrow(1, t, 1), ctx));
  auto inc = torch::cat(parts, 1);
  EXPECT_LE(rel_err(inc, full), 1e-10);
  EXPECT_EQ(cache.length, 45);
  EXPECT_GT(cache.bytes(), 0);
}

TEST_P(MixerKinds, PackedSequencesEqualSeparateRuns) {
  torch::manual_seed(32);
  // Without RoPE: decoding the batch below has a different position in every row.
  auto m = build(GetParam(), false);
  torch::NoGradGuard ng;
  std::vector<int64_t> lens{7, 30, 1, 19};
  auto x = torch::randn({1, 57, 32}, hyla::testing::f64());
  MixerContext ctx;
  ctx.cu_seqlens = torch::tensor({0, 7, 37, 38, 57}, torch::kInt64);
  LayerCache cache;
  ctx.cache = &cache;
  auto packed = m->forward(x, ctx);
  int64_t start = 0;
  for (size_t n = 0; n < lens.size(); ++n) {
    auto one = m->forward(x.narrow(1, start, lens[n]), {});
    EXPECT_LE(rel_err(packed.narrow(1, start, lens[n]), one), 1e-10) << "sequence " << n;
    start += lens[n];
  }
  // The packed prefill leaves one state per sequence: decoding a batch of 4 continues each.
  auto y = torch::randn({4, 1, 32}, hyla::testing::f64());
  MixerContext dctx;
  dctx.cache = &cache;
  auto dec = m->forward(y, dctx);
  start = 0;
  for (size_t n = 0; n < lens.size(); ++n) {
    auto seq = torch::cat({x.narrow(1, start, lens[n]), y.narrow(0, int64_t(n), 1)}, 1);
    auto ref = m->forward(seq, {}).narrow(1, lens[n], 1);
    EXPECT_LE(rel_err(dec.narrow(0, int64_t(n), 1), ref), 1e-10) << "sequence " << n;
    start += lens[n];
  }
}

TEST_P(MixerKinds, GradientsReachEveryParameter) {
  torch::manual_seed(33);
  auto m = build(GetParam());
  auto x = torch::randn({2, 21, 32}, hyla::testing::f64());
  m->forward(x, {}).square().sum().backward();
  for (auto& p : m->named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0) << p.key();
  }
}

INSTANTIATE_TEST_SUITE_P(All, MixerKinds, ::testing::Values("gdn", "dsla", "hypenet"),
                         [](const auto& info) { return std::string(info.param); });

TEST(MixerNames, FollowTheReferenceModules) {
  auto names = [](const Mixer& m) {
    std::vector<std::string> n;
    for (auto& p : m->named_parameters()) n.push_back(p.key());
    std::sort(n.begin(), n.end());
    return n;
  };
  // fla/layers/gated_deltanet.py
  EXPECT_EQ(names(make_mixer("gdn", small_config("gdn"))),
            (std::vector<std::string>{"A_log", "a_proj.weight", "b_proj.weight", "dt_bias", "g_proj.weight",
                                      "k_conv1d.weight", "k_proj.weight", "o_norm.weight", "o_proj.weight",
                                      "q_conv1d.weight", "q_proj.weight", "v_conv1d.weight", "v_proj.weight"}));
  // DSLA-Serve src/layer.py
  EXPECT_EQ(names(make_mixer("dsla", small_config("dsla"))),
            (std::vector<std::string>{"alpha_list", "gk_proj.bias", "gk_proj.weight", "gk_proj2.bias",
                                      "gk_proj2.weight", "k_proj.weight", "o_proj.weight", "q_proj.weight",
                                      "v_proj.weight"}));
  // HALO halo/modeling/hypenet/lightning_attn.py
  EXPECT_EQ(names(make_mixer("hypenet", small_config("hypenet"))),
            (std::vector<std::string>{"k_norm.weight", "k_proj.weight", "o_norm.weight", "o_proj.weight",
                                      "q_norm.weight", "q_proj.weight", "v_proj.weight", "z_proj.weight"}));
}

TEST(MixerShapes, GdnParameterShapesAndInit) {
  torch::manual_seed(34);
  auto c = small_config("gdn");
  GatedDeltaNet m(c);
  EXPECT_EQ(m->q_conv1d->weight.sizes(), (std::vector<int64_t>{16, 1, 4}));
  EXPECT_EQ(m->v_proj->weight.sizes(), (std::vector<int64_t>{24, 32}));
  EXPECT_EQ(m->o_norm->weight.sizes(), (std::vector<int64_t>{6}));
  auto A = m->A_log.exp();
  EXPECT_TRUE((A >= 0).all().item<bool>() && (A <= 16).all().item<bool>());
  auto dt = torch::softplus(m->dt_bias);  // softplus(dt_bias) recovers dt ∈ [1e-4, 0.1]
  EXPECT_TRUE((dt >= 1e-4 - 1e-7).all().item<bool>() && (dt <= 0.1 + 1e-6).all().item<bool>());
  EXPECT_EQ(m->state_bytes(4), 4 * 6 * 8 * 4 + 3 * (16 + 16 + 24) * 4);
}

TEST(MixerHypeNet, AlibiSlopesAndKvExpansion) {
  auto s16 = alibi_slopes(16);
  for (int i = 0; i < 16; ++i) EXPECT_NEAR(s16[i], std::pow(2.0, -0.5 * (i + 1)), 1e-15);
  std::vector<double> s6{0.25, 0.0625, 0.015625, 0.00390625, 0.5, 0.125};
  auto got = alibi_slopes(6);
  for (int i = 0; i < 6; ++i) EXPECT_NEAR(got[i], s6[i], 1e-15);
  auto w = torch::arange(6).view({3, 2}).to(torch::kFloat32);  // 3 kv heads of 1 row, d = 2
  auto e = expand_kv_rows(w, 3, 6);
  EXPECT_TRUE(torch::equal(e, torch::tensor({0, 1, 0, 1, 2, 3, 2, 3, 4, 5, 4, 5}).view({6, 2}).to(torch::kFloat32)));
  // Expanding the weights equals the runtime GQA expansion (HALO's expand_kv_proj).
  torch::manual_seed(35);
  auto c = small_config("hypenet");
  LightningAttention gqa(c);
  auto mc = c;
  mc.n_kv_heads = 0;
  LightningAttention mha(mc);
  {
    torch::NoGradGuard ng;
    for (auto& p : mha->named_parameters()) {
      auto src = gqa->named_parameters()[p.key()];
      if (p.key() == "k_proj.weight" || p.key() == "v_proj.weight") src = expand_kv_rows(src, 2, 4);
      p.value().copy_(src);
    }
  }
  auto x = torch::randn({1, 9, 32});
  EXPECT_LE(rel_err(mha->forward(x, {}), gqa->forward(x, {})), 1e-6);
}

TEST(MixerErrors, BadConfigsAndInputsNameTheLayer) {
  auto c = small_config("gdn");
  c.name = "layer 7 (gdn)";
  c.n_value_heads = 3;  // not a multiple of 2
  try {
    make_mixer("gdn", c);
    FAIL();
  } catch (const hyla::Error& e) {
    EXPECT_NE(std::string(e.what()).find("layer 7 (gdn)"), std::string::npos) << e.what();
  }
  auto h = small_config("hypenet");
  h.n_kv_heads = 3;
  EXPECT_THROW(make_mixer("hypenet", h), hyla::Error);
  EXPECT_THROW(make_mixer("mamba", small_config("gdn")), hyla::Error);
  auto m = make_mixer("dsla", small_config("dsla"));
  try {
    m->forward(torch::randn({1, 4, 31}), {});
    FAIL();
  } catch (const hyla::Error& e) {
    EXPECT_NE(std::string(e.what()).find("test dsla"), std::string::npos) << e.what();
  }
  MixerContext packed;
  packed.cu_seqlens = torch::tensor({0, 4}, torch::kInt64);
  EXPECT_THROW(m->forward(torch::randn({2, 4, 32}), packed), hyla::Error);
}

TEST(MixerRegistry, ReadsLinearConfigFromTheModel) {
  ModelConfig mc;
  mc.hidden_size = 64;
  mc.num_attention_heads = 4;
  mc.num_key_value_heads = 2;
  mc.head_dim = 16;
  mc.rms_norm_eps = 1e-6;
  mc.linear_config = nlohmann::json::parse(R"({"chunk_size": 32, "gdn": {"num_v_heads": 8, "head_v_dim": 32}})");
  auto g = mixer_config_from_model(mc, 3, "gdn");
  EXPECT_EQ(g.n_heads, 4);
  EXPECT_EQ(g.value_heads(), 8);
  EXPECT_EQ(g.head_k_dim, 16);
  EXPECT_EQ(g.v_dim(), 32);
  EXPECT_EQ(g.chunk_size, 32);
  EXPECT_FALSE(g.use_rope);
  auto h = mixer_config_from_model(mc, 3, "hypenet");
  EXPECT_TRUE(h.use_rope);
  EXPECT_EQ(h.v_dim(), 16);
  mc.linear_config = nlohmann::json::parse(R"({"gdn": {"num_vheads": 8}})");
  try {
    mixer_config_from_model(mc, 3, "gdn");
    FAIL();
  } catch (const hyla::Error& e) {
    EXPECT_NE(std::string(e.what()).find("num_vheads"), std::string::npos) << e.what();
  }
}

TEST(MixerRegistry, DecoderBuildsLinearLayersFromLayerTypes) {
  ModelConfig mc;
  mc.hidden_size = 32;
  mc.num_attention_heads = 2;
  mc.num_key_value_heads = 2;
  mc.head_dim = 16;
  mc.layer_types = {"full_attention", "gdn", "dsla", "hypenet"};
  EXPECT_EQ(build_mixer(mc, 1)->kind(), "gdn");
  EXPECT_EQ(build_mixer(mc, 2)->kind(), "dsla");
  EXPECT_EQ(build_mixer(mc, 3)->kind(), "hypenet");
}

}  // namespace
