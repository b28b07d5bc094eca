#include "hyla/model/hybrid.h"

#include <set>

#include "hyla/model/attention.h"
#include "hyla/model/mixers/common.h"
#include "hyla/model/mixers/registry.h"
#include "hyla/util/error.h"

namespace hyla::model {

std::vector<std::string> interleave_layer_types(int64_t n_layers, int64_t every, const std::string& mixer) {
  HYLA_CHECK(every >= 1, "attention interleave must be >= 1 (keep every k-th layer), got {}", every);
  std::vector<int64_t> keep;
  for (int64_t i = 0; i < n_layers; i += every) keep.push_back(i);
  return layer_types_keeping(n_layers, keep, mixer);
}

std::vector<std::string> layer_types_keeping(int64_t n_layers, const std::vector<int64_t>& attention_layers,
                                             const std::string& mixer) {
  HYLA_CHECK(is_linear_mixer_kind(mixer) && mixer != "lightning",
             "unknown linear mixer \"{}\" (have: gdn, dsla, hypenet)", mixer);
  std::vector<std::string> types(n_layers, mixer);
  for (int64_t l : attention_layers) {
    HYLA_CHECK(l >= 0 && l < n_layers, "attention layer {} is out of range (the model has layers 0..{})", l,
               n_layers - 1);
    types[l] = "full_attention";
  }
  return types;
}

namespace {

// New attention output gates (hybrid.h kAttentionGateInits). "neutral": σ(0) = 1/2
// exactly, and o_proj × 2 undoes it exactly (powers of two), so the layer's output is
// bit for bit the teacher's; "halo": HALO's N(0, 0.02) (methods.md §6.1).
void init_attention_gates(CausalLM& m, const std::string& gate_init) {
  for (int64_t i = 0; i < m->num_layers(); ++i) {
    auto* attn = dynamic_cast<AttentionImpl*>(m->layer(i)->mixer().get());
    if (!attn || attn->o_gate.is_empty()) continue;
    if (gate_init == "neutral") {
      attn->o_gate->weight.zero_();
      attn->o_proj->weight.mul_(2.0);
    } else {
      attn->o_gate->weight.normal_(0.0, 0.02);
    }
    if (attn->o_gate->bias.defined()) attn->o_gate->bias.zero_();
  }
}

}  // namespace

ModelConfig hybrid_config(const ModelConfig& teacher, const HybridOptions& opt) {
  ModelConfig c = teacher;
  HYLA_CHECK(static_cast<int64_t>(opt.layer_types.size()) == teacher.num_hidden_layers,
             "hybrid: {} layer types given for a model with {} layers", opt.layer_types.size(),
             teacher.num_hidden_layers);
  c.model_type = "hyla_hybrid";
  c.architecture = "HylaHybridForCausalLM";
  c.layer_types = opt.layer_types;
  // A sliding-window teacher layer stays sliding when it is kept.
  for (int64_t i = 0; i < c.num_hidden_layers; ++i)
    if (c.layer_types[i] == "full_attention" && teacher.layer_type(i) == "sliding_attention")
      c.layer_types[i] = "sliding_attention";
  c.linear_config = opt.linear_config.is_null() ? nlohmann::json::object() : opt.linear_config;
  HYLA_CHECK(c.linear_config.is_object(), "hybrid: linear_config must be a JSON object, got {}", c.linear_config.dump());
  if (opt.hype) {
    c.attention_nope = true;
    c.linear_config["use_rope"] = true;
    c.attention_logit_scale = opt.hype_logit_scale;
    if (opt.hype_logit_scale == "position") {
      HYLA_CHECK(opt.hype_logn_base > 1, "hybrid: HyPE's logn base must be > 1, got {}", opt.hype_logn_base);
      c.attention_logn_base = opt.hype_logn_base;
    } else if (opt.hype_logit_scale == "constant") {
      HYLA_CHECK(opt.hype_scale_constant > 0, "hybrid: HyPE's constant logit scale needs a value > 0 (--hype-scale-constant)");
      c.attention_logit_scale_constant = opt.hype_scale_constant;
    } else {
      HYLA_CHECK(opt.hype_logit_scale == "none", "hybrid: HyPE logit scale \"{}\" is not one of none, constant, position",
                 opt.hype_logit_scale);
    }
  }
  c.attention_output_gate = teacher.attention_output_gate || opt.attention_output_gate.value_or(opt.hype);
  c.qk_norm = teacher.qk_norm || opt.attention_qk_norm;
  c.validate("hybrid config");
  // Build each linear mixer's config once now, so a bad head count fails here, naming
  // the layer, rather than halfway through building the model.
  for (int64_t i = 0; i < c.num_hidden_layers; ++i)
    if (!c.is_attention_layer(i)) validate_mixer_config(mixer_config_from_model(c, i, c.layer_types[i]), c.layer_types[i]);
  return c;
}

CausalLM hybrid_from_teacher(CausalLM& teacher, const ModelConfig& config, const std::string& gate_init) {
  const auto& tc = teacher->config();
  HYLA_CHECK(tc.num_hidden_layers == config.num_hidden_layers && tc.hidden_size == config.hidden_size &&
                 tc.vocab_size == config.vocab_size && tc.intermediate_size == config.intermediate_size,
             "hybrid: the student's shape (layers {}, hidden {}, vocab {}, mlp {}) differs from the teacher's "
             "({}, {}, {}, {})",
             config.num_hidden_layers, config.hidden_size, config.vocab_size, config.intermediate_size,
             tc.num_hidden_layers, tc.hidden_size, tc.vocab_size, tc.intermediate_size);
  HYLA_CHECK(gate_init == "neutral" || gate_init == "halo", "hybrid: attention gate init \"{}\" is not one of {}",
             gate_init, kAttentionGateInits);
  HYLA_CHECK(tc.rms_norm_unit_offset == config.rms_norm_unit_offset,
             "hybrid: the student's norm form (rms_norm_unit_offset) must be the teacher's");
  CausalLM student(config);
  torch::NoGradGuard ng;
  auto src = teacher->named_parameters(true);
  // Mixer tensors of layer i are copied only when the layer keeps its kind: a GDN and a
  // DSLA both have a "q_proj", but one is not the other's initialisation.
  std::set<std::string> skip_prefix;
  for (int64_t i = 0; i < config.num_hidden_layers; ++i) {
    if (tc.layer_type(i) == config.layer_type(i) &&
        (config.is_attention_layer(i) || tc.linear_config == config.linear_config))
      continue;
    for (const char* m : {"self_attn", "linear_attn"})
      skip_prefix.insert(fmt::format("model.layers.{}.{}.", i, m));
  }
  auto skipped = [&](const std::string& name) {
    for (auto& p : skip_prefix)
      if (name.rfind(p, 0) == 0) return true;
    return false;
  };
  auto ends_with = [](const std::string& s, const std::string& tail) {
    return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
  };
  // Attention tensors the student's config adds: they keep their init (below).
  auto added = [&](const std::string& name) {
    bool qk = !tc.qk_norm && config.qk_norm &&
              (ends_with(name, ".self_attn.q_norm.weight") || ends_with(name, ".self_attn.k_norm.weight"));
    bool gate = !tc.attention_output_gate && config.attention_output_gate && name.find(".self_attn.o_gate.") != std::string::npos;
    return qk || gate;
  };
  for (auto& p : student->named_parameters(true)) {
    const std::string& name = p.key();
    if (skipped(name) || added(name)) continue;
    auto* t = src.find(name);
    HYLA_CHECK(t != nullptr, "hybrid: teacher has no tensor {} (needed by the student)", name);
    HYLA_CHECK(t->sizes() == p.value().sizes(), "hybrid: teacher tensor {} has shape {}, the student needs {}", name,
               t->sizes(), p.value().sizes());
    p.value().copy_(t->detach().to(torch::kCPU, torch::kFloat32));
  }
  if (!tc.attention_output_gate && config.attention_output_gate) init_attention_gates(student, gate_init);
  student->eval();
  return student;
}

}  // namespace hyla::model
