#include "hyla/model/mixers/registry.h"

#include <set>

#include "hyla/model/decoder.h"
#include "hyla/model/mixers/dsla.h"
#include "hyla/model/mixers/gdn.h"
#include "hyla/model/mixers/hypenet.h"
#include "hyla/util/error.h"

namespace hyla::model {

std::vector<std::string> mixer_kinds() { return {"gdn", "dsla", "hypenet"}; }

bool is_linear_mixer_kind(const std::string& kind) {
  return kind == "gdn" || kind == "dsla" || kind == "hypenet" || kind == "lightning";
}

Mixer make_mixer(const std::string& kind, const MixerConfig& c) {
  auto hold = [](std::shared_ptr<MixerImpl> m) { return Mixer(std::move(m)); };
  if (kind == "gdn") return hold(std::make_shared<GatedDeltaNetImpl>(c));
  if (kind == "dsla") return hold(std::make_shared<DualStateLinearAttentionImpl>(c));
  if (kind == "hypenet" || kind == "lightning") return hold(std::make_shared<LightningAttentionImpl>(c));
  fail("{}: unknown linear mixer kind \"{}\" (have: gdn, dsla, hypenet)", c.name, kind);
}

namespace {

// Applies the keys of one JSON object to c; unknown keys are errors (typos).
void apply_keys(const nlohmann::json& j, MixerConfig& c, const std::string& where) {
  static const std::set<std::string> kinds{"gdn", "dsla", "hypenet", "lightning"};
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& key = it.key();
    const auto& v = it.value();
    if (kinds.count(key)) continue;  // a kind's own object, applied separately
    try {
      if (key == "num_heads") c.n_heads = v.get<int64_t>();
      else if (key == "num_v_heads") c.n_value_heads = v.get<int64_t>();
      else if (key == "num_kv_heads") c.n_kv_heads = v.get<int64_t>();
      else if (key == "head_k_dim" || key == "head_dim") c.head_k_dim = v.get<int64_t>();
      else if (key == "head_v_dim") c.head_v_dim = v.get<int64_t>();
      else if (key == "conv_size") c.conv_size = v.get<int64_t>();
      else if (key == "use_short_conv") c.use_short_conv = v.get<bool>();
      else if (key == "conv_bias") c.conv_bias = v.get<bool>();
      else if (key == "use_gate") c.use_gate = v.get<bool>();
      else if (key == "allow_neg_eigval") c.allow_neg_eigval = v.get<bool>();
      else if (key == "beta_bias") c.beta_bias = v.get<bool>();
      else if (key == "norm_eps") c.norm_eps = c.rms_eps = v.get<double>();
      else if (key == "gate_logit_normalizer") c.gate_logit_normalizer = v.get<double>();
      else if (key == "gate_clamp_min") c.gate_clamp_min = v.get<double>();
      else if (key == "qk_norm") c.qk_norm = v.get<bool>();
      else if (key == "output_norm") c.output_norm = v.get<bool>();
      else if (key == "output_gate") c.output_gate = v.get<bool>();
      else if (key == "use_rope") c.use_rope = v.get<bool>();
      else if (key == "chunk_size") c.chunk_size = v.get<int64_t>();
      else if (key == "initializer_range") c.init_std = v.get<double>();
      else fail("{}: unknown key \"{}\"", where, key);
    } catch (const nlohmann::json::exception& e) {
      fail("{}: key \"{}\" has the wrong type ({})", where, key, e.what());
    }
  }
}

}  // namespace

MixerConfig mixer_config_from_model(const ModelConfig& mc, int64_t layer, const std::string& kind) {
  MixerConfig c;
  c.name = fmt::format("layer {} ({})", layer, kind);
  HYLA_CHECK(is_linear_mixer_kind(kind), "{}: unknown linear mixer kind \"{}\" (have: gdn, dsla, hypenet)",
             c.name, kind);
  c.hidden = mc.hidden_size;
  c.n_heads = mc.num_attention_heads;
  c.head_k_dim = mc.head_dim > 0 ? mc.head_dim : (mc.num_attention_heads > 0 ? mc.hidden_size / mc.num_attention_heads : 0);
  c.head_v_dim = c.head_k_dim;
  c.norm_eps = c.rms_eps = mc.rms_norm_eps;
  c.rope = mc.rope;
  c.use_rope = kind == "hypenet" || kind == "lightning";
  c.attention_bias = mc.attention_bias;
  const auto& j = mc.linear_config;
  if (j.is_object()) {
    apply_keys(j, c, "config linear_config");
    std::string k = kind == "lightning" ? "hypenet" : kind;
    if (j.contains(k)) {
      HYLA_CHECK(j[k].is_object(), "config linear_config.{} must be an object", k);
      apply_keys(j[k], c, fmt::format("config linear_config.{}", k));
    }
  }
  return c;
}

void register_linear_mixers() {
  set_linear_mixer_factory([](const std::string& kind, const ModelConfig& mc, int64_t layer) {
    return make_mixer(kind, mixer_config_from_model(mc, layer, kind));
  });
}

namespace {
const bool registered = (register_linear_mixers(), true);
}  // namespace

}  // namespace hyla::model
