#include "hyla/distill/convert.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "hyla/distill/taylor_calibrate.h"
#include "hyla/distill/transfer.h"
#include "hyla/model/attention.h"
#include "hyla/model/mixers/registry.h"
#include "hyla/util/error.h"
#include "hyla/util/log.h"

namespace hyla::distill {
using nlohmann::json;

GqaLayout gqa_layout_from_name(const std::string& name, const std::string& where) {
  if (name == "heads") return GqaLayout::Heads;
  if (name == "rows") return GqaLayout::Rows;
  fail("{}: unknown GQA layout \"{}\" (have: heads, rows)", where, name);
}

std::string gqa_layout_name(GqaLayout g) { return g == GqaLayout::Heads ? "heads" : "rows"; }

const std::vector<std::string>& init_names() {
  static const std::vector<std::string> names{"transfer", "taylor",      "taylor-init", "align-only",
                                              "random-gate", "zero-gate", "random"};
  return names;
}

bool ConvertOptions::needs_calibration() const {
  return init == "taylor" || init == "taylor-init" || init == "align-only";
}

std::vector<int64_t> attention_layers_for_share(int64_t n_layers, double share, const std::string& where) {
  HYLA_CHECK(share >= 0 && share <= 1, "{}: attention share must be in [0, 1], got {}", where, share);
  auto k = static_cast<int64_t>(std::floor(share * double(n_layers) + 0.5));  // half up
  HYLA_CHECK(share == 0 || k > 0, "{}: attention share {} of {} layers keeps no attention layer (rounds to 0)", where,
             share, n_layers);
  std::vector<int64_t> layers;
  for (int64_t i = 0; i < k; ++i) layers.push_back(i * n_layers / k);
  return layers;
}

namespace {

// Reads `key` from a JSON table when present, with a type error that names the field.
template <typename T>
bool read(const json& j, const char* key, T& out, const std::string& where) {
  if (!j.contains(key)) return false;
  try {
    out = j[key].get<T>();
  } catch (const json::exception&) {
    fail("{}: {} has the wrong type ({})", where, key, j[key].dump());
  }
  return true;
}

void refuse_unknown(const json& j, const std::set<std::string>& known, const std::string& where) {
  for (auto& [k, _] : j.items())
    HYLA_CHECK(known.count(k), "{}: unknown key \"{}\"", where, k);
}

}  // namespace

TaylorOptions TaylorOptions::from_json(const json& j, const std::string& where) {
  TaylorOptions t;
  HYLA_CHECK(j.is_object(), "{} must be a table", where);
  refuse_unknown(j,
                 {"calib_sequences", "calib_seq_len", "stat_batch", "analytic", "align", "align_steps",
                  "align_sequences", "lr_qkv", "lr_new", "weight_decay", "grad_clip", "beta_min", "beta_max",
                  "gate_damping", "sigma_min", "sigma_max", "beta_bias", "decay_fit", "ridge_v", "ridge_lambda",
                  "progress"},
                 where);
  read(j, "calib_sequences", t.calib_sequences, where);
  read(j, "calib_seq_len", t.calib_seq_len, where);
  read(j, "stat_batch", t.stat_batch, where);
  read(j, "analytic", t.analytic, where);
  read(j, "align", t.align, where);
  read(j, "align_steps", t.align_steps, where);
  read(j, "align_sequences", t.align_sequences, where);
  read(j, "lr_qkv", t.lr_qkv, where);
  read(j, "lr_new", t.lr_new, where);
  read(j, "weight_decay", t.weight_decay, where);
  read(j, "grad_clip", t.grad_clip, where);
  read(j, "beta_min", t.beta_min, where);
  read(j, "beta_max", t.beta_max, where);
  read(j, "gate_damping", t.gate_damping, where);
  read(j, "sigma_min", t.sigma_min, where);
  read(j, "sigma_max", t.sigma_max, where);
  read(j, "beta_bias", t.beta_bias, where);
  read(j, "decay_fit", t.decay_fit, where);
  read(j, "ridge_v", t.ridge_v, where);
  read(j, "ridge_lambda", t.ridge_lambda, where);
  read(j, "progress", t.progress, where);
  HYLA_CHECK(t.calib_sequences >= 1 && t.calib_seq_len >= 2, "{}: calib_sequences must be >= 1 and calib_seq_len "
             ">= 2 (got {} and {})", where, t.calib_sequences, t.calib_seq_len);
  HYLA_CHECK(t.stat_batch >= 1, "{}: stat_batch must be >= 1, got {}", where, t.stat_batch);
  HYLA_CHECK(t.align_steps >= 0 && t.align_sequences >= 0, "{}: align_steps and align_sequences must be >= 0", where);
  HYLA_CHECK(t.decay_fit == "half_life" || t.decay_fit == "log_mass",
             "{}: decay_fit must be \"half_life\" or \"log_mass\", got \"{}\"", where, t.decay_fit);
  HYLA_CHECK(t.beta_min > 0 && t.beta_min <= t.beta_max && t.beta_max < 1,
             "{}: need 0 < beta_min <= beta_max < 1 (got {}, {})", where, t.beta_min, t.beta_max);
  HYLA_CHECK(t.sigma_min > 0 && t.sigma_min <= t.sigma_max, "{}: need 0 < sigma_min <= sigma_max", where);
  HYLA_CHECK(t.ridge_lambda >= 0, "{}: ridge_lambda must be >= 0", where);
  return t;
}

json TaylorOptions::to_json() const {
  return {{"calib_sequences", calib_sequences}, {"calib_seq_len", calib_seq_len}, {"stat_batch", stat_batch},
          {"analytic", analytic},         {"align", align},                 {"align_steps", align_steps},
          {"align_sequences", align_sequences}, {"lr_qkv", lr_qkv},         {"lr_new", lr_new},
          {"weight_decay", weight_decay}, {"grad_clip", grad_clip},         {"beta_min", beta_min},
          {"beta_max", beta_max},         {"gate_damping", gate_damping},   {"sigma_min", sigma_min},
          {"sigma_max", sigma_max},       {"beta_bias", beta_bias},         {"decay_fit", decay_fit},
          {"ridge_v", ridge_v},           {"ridge_lambda", ridge_lambda},   {"progress", progress}};
}

ConvertOptions ConvertOptions::from_json(const json& j, const model::ModelConfig& teacher, const std::string& label) {
  std::string where = label + ": [student]";
  HYLA_CHECK(j.is_object(), "{} must be a table", where);
  refuse_unknown(j,
                 {"mixer", "attention_every", "attention_layers", "attention_share", "selection", "layer_types",
                  "linear_config", "hype", "hype_logn_base", "init", "gqa_layout", "conv_identity", "seed", "taylor"},
                 where);
  ConvertOptions o;
  std::string mixer = "gdn", layout = "heads";
  read(j, "mixer", mixer, where);
  int given = int(j.contains("attention_every")) + int(j.contains("attention_layers")) +
              int(j.contains("attention_share")) + int(j.contains("layer_types")) + int(j.contains("selection"));
  HYLA_CHECK(given <= 1 || (given == 2 && j.contains("selection") && j.contains("attention_share")),
             "{}: give one of attention_every, attention_layers, attention_share, layer_types, selection (selection "
             "may come with attention_share)",
             where);
  int64_t L = teacher.num_hidden_layers;
  if (read(j, "layer_types", o.hybrid.layer_types, where + " layer_types")) {
  } else if (std::vector<int64_t> keep; read(j, "attention_layers", keep, where)) {
    o.hybrid.layer_types = model::layer_types_keeping(L, keep, mixer);
  } else if (read(j, "selection", o.selection, where)) {
    // Resolved by the caller (needs the selection file and maybe attention_share).
    o.hybrid.layer_types.assign(L, mixer);
  } else if (double share = 0; read(j, "attention_share", share, where)) {
    o.hybrid.layer_types = model::layer_types_keeping(L, attention_layers_for_share(L, share, where + " attention_share"), mixer);
  } else {
    int64_t every = 4;
    read(j, "attention_every", every, where);
    o.hybrid.layer_types = model::interleave_layer_types(L, every, mixer);
  }
  if (j.contains("linear_config")) {
    HYLA_CHECK(j["linear_config"].is_object(), "{}: linear_config must be a table", where);
    o.hybrid.linear_config = j["linear_config"];
  }
  read(j, "hype", o.hybrid.hype, where);
  read(j, "hype_logn_base", o.hybrid.hype_logn_base, where);
  read(j, "init", o.init, where);
  read(j, "gqa_layout", layout, where);
  o.gqa = gqa_layout_from_name(layout, where + " gqa_layout");
  read(j, "conv_identity", o.conv_identity, where);
  read(j, "seed", o.seed, where);
  if (j.contains("taylor")) o.taylor = TaylorOptions::from_json(j["taylor"], where + ".taylor");
  try {  // the table's own refusals (no layer left to convert, unknown init) name it too
    o.validate(teacher);
  } catch (const Error& e) {
    fail("{}: {}", where, e.what());
  }
  return o;
}

void ConvertOptions::validate(const model::ModelConfig& teacher) const {
  const auto& names = init_names();
  HYLA_CHECK(std::find(names.begin(), names.end(), init) != names.end(),
             "unknown init \"{}\" (have: transfer, taylor, taylor-init, align-only, random-gate, zero-gate, random)",
             init);
  HYLA_CHECK(static_cast<int64_t>(hybrid.layer_types.size()) == teacher.num_hidden_layers,
             "{} layer types given for a teacher with {} layers", hybrid.layer_types.size(), teacher.num_hidden_layers);
  int64_t linear = 0;
  for (int64_t i = 0; i < teacher.num_hidden_layers; ++i) {
    HYLA_CHECK(teacher.is_attention_layer(i),
               "layer {} of the teacher is \"{}\", not attention: only attention layers can be converted", i,
               teacher.layer_type(i));
    linear += model::is_linear_mixer_kind(hybrid.layer_types[i]);
  }
  if (selection.empty())
    HYLA_CHECK(linear > 0, "the layer choice keeps all {} layers as attention: no layer is left to convert",
               teacher.num_hidden_layers);
}

model::ModelConfig student_config(const model::ModelConfig& teacher, const ConvertOptions& opt) {
  std::vector<std::string> kinds;
  for (auto& k : opt.hybrid.layer_types)
    if (model::is_linear_mixer_kind(k) && std::find(kinds.begin(), kinds.end(), k) == kinds.end()) kinds.push_back(k);
  model::HybridOptions h = opt.hybrid;
  // Exact-transfer defaults under the user's keys (a user key wins, also inside a kind's object).
  json lc = opt.init == "random" ? json::object() : transfer_linear_config(teacher, kinds);
  // §3.9 (i) needs somewhere to put the bias: a b_proj with one.
  if (opt.needs_calibration() && opt.taylor.beta_bias && opt.taylor.analytic && opt.init != "align-only")
    for (auto& k : kinds)
      if (k == "gdn") lc["gdn"]["beta_bias"] = true;
  if (opt.hybrid.linear_config.is_object()) {
    // A kind's own object overrides top-level keys (registry.h): a user's top-level key
    // must not be shadowed by a default placed in the kind's object.
    for (auto& [key, _] : opt.hybrid.linear_config.items())
      for (auto& k : kinds)
        if (lc.contains(k)) lc[k].erase(key);
    lc.merge_patch(opt.hybrid.linear_config);
  }
  h.linear_config = lc;
  return model::hybrid_config(teacher, h);
}

model::CausalLM convert_teacher(model::CausalLM& teacher, const ConvertOptions& opt, const torch::Tensor& calib,
                                CalibrationReport* report) {
  const auto& tc = teacher->config();
  opt.validate(tc);
  HYLA_CHECK(!opt.needs_calibration() || calib.defined(),
             "--init {} needs calibration tokens from training text (--calib-text)", opt.init);
  auto sc = student_config(tc, opt);
  torch::manual_seed(opt.seed);
  auto student = model::hybrid_from_teacher(teacher, sc);
  if (opt.init == "random") return student;
  for (int64_t i = 0; i < sc.num_hidden_layers; ++i) {
    if (sc.is_attention_layer(i)) continue;
    auto* t = dynamic_cast<model::AttentionImpl*>(teacher->layer(i)->mixer().get());
    HYLA_CHECK(t != nullptr, "layer {} of the teacher is not softmax attention", i);
    auto m = student->layer(i)->mixer();
    transfer_attention(*t, tc, *m, i, opt.gqa);
    if (opt.conv_identity) set_conv_identity(*m);
    set_output_gate(*m, opt.init, i);
  }
  if (opt.needs_calibration()) {
    TaylorOptions t = opt.taylor;
    if (opt.init == "taylor-init") t.align = false;
    if (opt.init == "align-only") t.analytic = false;
    // The student is built on the CPU; calibration runs where the teacher lives (a GPU
    // makes Phase 2's per-layer alignment minutes faster), then the student comes back.
    auto dev = teacher->parameters().front().device();
    student->to(dev);
    auto rep = taylor_calibrate(teacher, student, calib.to(dev), t, opt.gqa);
    student->to(torch::kCPU);
    if (report) *report = rep;
  }
  student->eval();
  return student;
}

}  // namespace hyla::distill
