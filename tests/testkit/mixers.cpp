// Test-only entry points for the mixer oracle tests (tests/py/test_gdn_fla.py,
// tests/py/test_mixers.py): run one recurrence form, or one mixer module, on tensors
// read from a safetensors file and write the results back for comparison with fla.
#include <CLI/CLI.hpp>

#include <fstream>

#include "../../tools/hyla/command.h"
#include "hyla/io/safetensors.h"
#include "hyla/model/mixers/registry.h"
#include "hyla/ops/gated_delta.h"
#include "hyla/ops/gated_linear.h"
#include "hyla/util/error.h"
#include "device.h"

namespace {

using hyla::io::SafetensorsFile;

// Inputs go to the test device (HYLA_TEST_DEVICE); cu_seqlens too, as the model passes it.
torch::Tensor load(const SafetensorsFile& f, const std::string& name) {
  return f.load(name, true).to(hyla::testkit::test_device());
}

torch::Tensor optional(const SafetensorsFile& f, const std::string& name) {
  return f.has(name) ? load(f, name) : torch::Tensor();
}

// Results are written from the CPU.
torch::Tensor host(const torch::Tensor& t) { return t.contiguous().to(torch::kCPU); }

// Step form over a whole [B, T, ...] sequence: one call per token, carrying the state.
hyla::ops::RecurrenceResult run_steps(const std::string& op, const SafetensorsFile& f, double scale) {
  auto q = load(f, "q"), k = load(f, "k"), v = load(f, "v"), g = load(f, "g");
  auto beta = optional(f, "beta");
  auto S = optional(f, "initial_state");
  std::vector<torch::Tensor> outs;
  for (int64_t t = 0; t < q.size(1); ++t) {
    auto at = [&](const torch::Tensor& x) { return x.select(1, t); };
    auto r = op == "gated_delta"
                 ? hyla::ops::gated_delta_step(at(q), at(k), at(v), at(g), at(beta), S, scale)
                 : hyla::ops::gated_linear_step(at(q), at(k), at(v), at(g), S, scale);
    outs.push_back(r.o);
    S = r.state;
  }
  return {torch::stack(outs, 1), S};
}

hyla::ops::RecurrenceResult run_form(const std::string& op, const std::string& form, int64_t chunk,
                                     const SafetensorsFile& f, double scale) {
  if (form == "step") return run_steps(op, f, scale);
  hyla::ops::RecurrenceOptions opt;
  opt.scale = scale;
  opt.initial_state = optional(f, "initial_state");
  opt.cu_seqlens = optional(f, "cu_seqlens");
  opt.chunk_size = chunk;
  auto q = load(f, "q"), k = load(f, "k"), v = load(f, "v"), g = load(f, "g");
  bool chunked = form == "chunked";
  HYLA_CHECK(chunked || form == "recurrent", "unknown form \"{}\" (have: recurrent, chunked, step, all)", form);
  if (op == "gated_delta") {
    auto beta = load(f, "beta");
    return chunked ? hyla::ops::gated_delta_chunked(q, k, v, g, beta, opt)
                   : hyla::ops::gated_delta_recurrent(q, k, v, g, beta, opt);
  }
  HYLA_CHECK(op == "gated_linear", "unknown op \"{}\" (have: gated_delta, gated_linear)", op);
  return chunked ? hyla::ops::gated_linear_chunked(q, k, v, g, opt)
                 : hyla::ops::gated_linear_recurrent(q, k, v, g, opt);
}

// Writes o and state; with form "all", o.<form> and state.<form> for the three forms
// (one process start instead of three).
int run_op(const std::string& op, const std::string& form, int64_t chunk, const std::string& in,
           const std::string& out) {
  auto f = SafetensorsFile::open(in);
  auto scale_t = optional(*f, "scale");
  double scale = scale_t.defined() ? scale_t.item<double>() : -1;
  hyla::io::NamedTensors result;
  if (form == "all") {
    for (std::string fm : {"recurrent", "chunked", "step"}) {
      if (fm == "step" && f->has("cu_seqlens")) continue;  // the step form takes one batch row per sequence
      auto r = run_form(op, fm, chunk, *f, scale);
      result.emplace_back("o." + fm, host(r.o));
      result.emplace_back("state." + fm, host(r.state));
    }
  } else {
    auto r = run_form(op, form, chunk, *f, scale);
    result = {{"o", host(r.o)}, {"state", host(r.state)}};
  }
  hyla::io::save_safetensors(out, result);
  return 0;
}

// The mixer's config comes from a small model-config JSON: hidden_size,
// num_attention_heads, head_dim, rms_norm_eps, rope_theta and linear_config.
hyla::model::Mixer build_mixer(const std::string& kind, const std::string& config_path) {
  std::ifstream in(config_path);
  HYLA_CHECK(in.good(), "cannot read {}", config_path);
  auto j = nlohmann::json::parse(in);
  hyla::model::ModelConfig mc;
  mc.hidden_size = j.at("hidden_size");
  mc.num_attention_heads = j.at("num_attention_heads");
  mc.head_dim = j.value("head_dim", int64_t(0));
  mc.rms_norm_eps = j.value("rms_norm_eps", 1e-6);
  mc.rope.theta = j.value("rope_theta", 10000.0);
  mc.attention_bias = j.value("attention_bias", false);
  mc.linear_config = j.value("linear_config", nlohmann::json::object());
  return hyla::model::make_mixer(kind, hyla::model::mixer_config_from_model(mc, 0, kind));
}

int run_mixer(const std::string& kind, const std::string& config, const std::string& weights,
              const std::string& in, const std::string& out, int64_t decode_from) {
  auto m = build_mixer(kind, config);
  auto w = SafetensorsFile::open(weights);
  auto x_file = SafetensorsFile::open(in);
  auto x = load(*x_file, "x");
  m->to(x.device(), x.scalar_type());
  {
    torch::NoGradGuard ng;
    for (auto& p : m->named_parameters()) p.value().copy_(load(*w, p.key()));
  }
  torch::NoGradGuard ng;
  hyla::model::MixerContext ctx;
  ctx.cu_seqlens = optional(*x_file, "cu_seqlens");
  hyla::model::LayerCache cache;
  ctx.cache = &cache;
  torch::Tensor y;
  if (decode_from <= 0) {
    y = m->forward(x, ctx);
  } else {
    std::vector<torch::Tensor> parts{m->forward(x.narrow(1, 0, decode_from), ctx)};
    for (int64_t t = decode_from; t < x.size(1); ++t) parts.push_back(m->forward(x.narrow(1, t, 1), ctx));
    y = torch::cat(parts, 1);
  }
  hyla::io::NamedTensors result{{"y", host(y)}};
  for (auto& [name, t] : cache.state) result.emplace_back("state." + name, host(t));
  hyla::io::save_safetensors(out, result);
  return 0;
}

hyla::cli::Register op_cmd("mix-op", "run one recurrence form on tensors from a safetensors file",
                           [](CLI::App& app) {
  auto op = std::make_shared<std::string>(), form = std::make_shared<std::string>("chunked");
  auto in = std::make_shared<std::string>(), out = std::make_shared<std::string>();
  auto chunk = std::make_shared<int64_t>(64);
  app.add_option("--op", *op, "gated_delta | gated_linear")->required();
  app.add_option("--form", *form, "recurrent | chunked | step | all");
  app.add_option("--chunk", *chunk, "chunk size");
  app.add_option("--in", *in, "inputs: q, k, v, g, [beta], [initial_state], [cu_seqlens], [scale]")->required();
  app.add_option("--out", *out, "outputs: o, state")->required();
  return [=]() { return run_op(*op, *form, *chunk, *in, *out); };
});

hyla::cli::Register mixer_cmd("mix-mixer", "run one linear mixer module with given weights",
                              [](CLI::App& app) {
  auto kind = std::make_shared<std::string>(), config = std::make_shared<std::string>();
  auto weights = std::make_shared<std::string>(), in = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  auto decode_from = std::make_shared<int64_t>(0);
  app.add_option("--kind", *kind, "gdn | dsla | hypenet")->required();
  app.add_option("--config", *config, "model-config JSON (hidden_size, heads, linear_config)")->required();
  app.add_option("--weights", *weights, "safetensors with the mixer's parameters")->required();
  app.add_option("--in", *in, "safetensors with x [B, T, d] and optional cu_seqlens")->required();
  app.add_option("--out", *out, "writes y and the cache states (state.<name>)")->required();
  app.add_option("--decode-from", *decode_from, "prefill this many tokens, then decode one at a time");
  return [=]() { return run_mixer(*kind, *config, *weights, *in, *out, *decode_from); };
});

}  // namespace
