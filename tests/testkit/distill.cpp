// Test entry points for conversion (tests/py/test_convert.py): run one converted layer's
// mixer pieces on given inputs and write the results, so the oracle test can compare them
// with transformers' attention projections and a float64 linear attention.
//
//   mixer-parts --model DIR --layer L --input in.safetensors --out out.safetensors
//     in:  "x" [B, T, d] (the layer's normalised input), "a" [B, T, H·dv] (an input
//          for o_proj). Out: "q", "k", "v" = the mixer's q/k/v projections of x (with
//          bias where the mixer has one), "o" = o_proj(a), "y" = the mixer's output on x;
//          HypeNet also "q_normed", "k_normed" (after its per-head q/k RMSNorm).
#include <cstdio>

#include "../../tools/hyla/command.h"
#include "hyla/io/safetensors.h"
#include "hyla/model/decoder.h"
#include "hyla/model/mixers/dsla.h"
#include "hyla/model/mixers/gdn.h"
#include "hyla/model/mixers/hypenet.h"
#include "hyla/ops/norms.h"
#include "hyla/util/error.h"

namespace {
using namespace hyla;

struct PartsArgs {
  std::string model, input, out, dtype = "float64";
  int64_t layer = 0;
};

int run_parts(const PartsArgs& a) {
  auto m = model::load_causal_lm(a.model, torch::kCPU, model::dtype_from_name(a.dtype));
  auto in = io::TensorStore::open(a.input);
  auto dt = model::dtype_from_name(a.dtype);
  auto x = in.load("x").to(dt), act = in.load("a").to(dt);
  HYLA_CHECK(a.layer >= 0 && a.layer < m->num_layers(), "--layer {} out of range", a.layer);
  auto mixer = m->layer(a.layer)->mixer();
  torch::NoGradGuard ng;
  io::NamedTensors out;
  int64_t B = x.size(0), T = x.size(1);
  auto put = [&](const char* n, const torch::Tensor& t) { out.emplace_back(n, t.contiguous()); };
  auto parts = [&](torch::nn::Linear& q, torch::nn::Linear& k, torch::nn::Linear& v, torch::nn::Linear& o) {
    put("q", q(x)), put("k", k(x)), put("v", v(x)), put("o", o(act));
  };
  if (auto* g = dynamic_cast<model::GatedDeltaNetImpl*>(mixer.get())) {
    parts(g->q_proj, g->k_proj, g->v_proj, g->o_proj);
  } else if (auto* d = dynamic_cast<model::DualStateLinearAttentionImpl*>(mixer.get())) {
    parts(d->q_proj, d->k_proj, d->v_proj, d->o_proj);
  } else if (auto* h = dynamic_cast<model::LightningAttentionImpl*>(mixer.get())) {
    parts(h->q_proj, h->k_proj, h->v_proj, h->o_proj);
    const auto& c = h->config();
    if (c.qk_norm) {
      put("q_normed", ops::rms_norm(h->q_proj(x).view({B, T, -1, c.head_k_dim}), h->q_norm->weight, c.rms_eps));
      put("k_normed", ops::rms_norm(h->k_proj(x).view({B, T, -1, c.head_k_dim}), h->k_norm->weight, c.rms_eps));
    }
  } else {
    fail("layer {} is {}, not a linear mixer", a.layer, mixer->kind());
  }
  put("y", mixer->forward(x, {}));
  io::save_safetensors(a.out, out);
  std::printf("{\"kind\": \"%s\"}\n", mixer->kind().c_str());
  return 0;
}

hyla::cli::Register parts("mixer-parts", "q/k/v/o projections and output of one layer's linear mixer",
                          [](CLI::App& app) {
  auto a = std::make_shared<PartsArgs>();
  app.add_option("--model", a->model)->required();
  app.add_option("--layer", a->layer)->required();
  app.add_option("--input", a->input)->required();
  app.add_option("--out", a->out)->required();
  app.add_option("--dtype", a->dtype);
  return [=]() { return run_parts(*a); };
});

}  // namespace
