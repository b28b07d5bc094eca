#include "hyla/model/config.h"

#include <set>

#include "hyla/io/atomic_file.h"
#include "hyla/model/qwen3_next_config.h"
#include "hyla/util/error.h"

namespace hyla::model {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Fields that do not change the computation (bookkeeping, generation defaults,
// training-only knobs). Anything not here and not read below is refused, so a model
// hyla cannot compute correctly never loads silently.
const std::set<std::string> kIgnored = {
    "architectures", "transformers_version", "_name_or_path", "initializer_range",
    "use_cache", "attention_dropout", "pretraining_tp", "pad_token_id", "dtype",
    "torch_dtype", "max_window_layers", "use_sliding_window", "output_attentions",
    "output_hidden_states", "return_dict", "use_return_dict", "torchscript",
    "tokenizer_class", "id2label", "label2id", "problem_type", "is_encoder_decoder",
    "is_decoder", "add_cross_attention", "chunk_size_feed_forward", "tie_encoder_decoder",
    "auto_map", "bos_token_id", "eos_token_id", "model_type", "hidden_act",
    "rope_theta", "rope_scaling", "rope_parameters", "partial_rotary_factor",
    "sliding_window", "layer_types", "qk_norm", "linear_config", "attention_nope",
    "attention_logn_base", "hyla", "max_position_embeddings", "rms_norm_eps",
    "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
    "num_attention_heads", "num_key_value_heads", "head_dim", "attention_bias",
    "mlp_bias", "tie_word_embeddings", "attention_out_bias", "use_bidirectional_attention",
    "original_max_position_embeddings", "attention_logit_scale", "attention_logit_scale_constant",
    "attention_output_gate", "rms_norm_unit_offset"};

template <typename T>
T get(const json& j, const char* key, const std::string& label, T fallback, bool required) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    HYLA_CHECK(!required, "{}: missing required field \"{}\"", label, key);
    return fallback;
  }
  try {
    return it->get<T>();
  } catch (const json::exception&) {
    fail("{}: field \"{}\" has the wrong type ({})", label, key, it->dump());
  }
}

std::vector<int64_t> id_list(const json& j, const char* key, const std::string& label) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return {};
  if (it->is_number_integer()) return {it->get<int64_t>()};
  HYLA_CHECK(it->is_array(), "{}: field \"{}\" must be an integer or a list", label, key);
  std::vector<int64_t> out;
  for (auto& v : *it) {
    HYLA_CHECK(v.is_number_integer(), "{}: field \"{}\" must hold integers", label, key);
    out.push_back(v.get<int64_t>());
  }
  return out;
}

}  // namespace

RopeParams parse_rope(const json& j, const std::string& label, int64_t max_pos) {
  RopeParams r;
  r.max_position = max_pos;
  // transformers >= 5 writes "rope_parameters" (with rope_theta inside); 4.x wrote
  // "rope_theta" plus an optional "rope_scaling" dict.
  json p = json::object();
  if (j.contains("rope_parameters") && j["rope_parameters"].is_object()) p = j["rope_parameters"];
  else if (j.contains("rope_scaling") && j["rope_scaling"].is_object()) p = j["rope_scaling"];
  const std::string where = label + ": rope_parameters";
  r.theta = get<double>(p, "rope_theta", where, get<double>(j, "rope_theta", label, 10000.0, false), false);
  std::string type = get<std::string>(p, "rope_type", where, get<std::string>(p, "type", where, "default", false), false);
  static const std::set<std::string> known = {"default", "linear", "dynamic", "yarn", "llama3"};
  HYLA_CHECK(known.count(type), "{}: rope_type \"{}\" is not supported (have: default, linear, dynamic, yarn, llama3)", where, type);
  r.type = type;
  r.partial_rotary_factor = get<double>(p, "partial_rotary_factor", where,
                                        get<double>(j, "partial_rotary_factor", label, 1.0, false), false);
  if (type != "default") r.factor = get<double>(p, "factor", where, 1.0, type != "yarn");
  if (type == "yarn" && !p.contains("factor")) r.factor = 0;  // derived below
  r.original_max_position = get<int64_t>(p, "original_max_position_embeddings", where,
                                         get<int64_t>(j, "original_max_position_embeddings", label, max_pos, false), false);
  if (type == "yarn" && r.factor == 0) r.factor = double(max_pos) / r.original_max_position;
  if (type == "llama3") {
    r.low_freq_factor = get<double>(p, "low_freq_factor", where, 1.0, true);
    r.high_freq_factor = get<double>(p, "high_freq_factor", where, 4.0, true);
    HYLA_CHECK(r.high_freq_factor > r.low_freq_factor, "{}: high_freq_factor must exceed low_freq_factor", where);
  }
  if (type == "yarn") {
    r.beta_fast = get<double>(p, "beta_fast", where, 32.0, false);
    r.beta_slow = get<double>(p, "beta_slow", where, 1.0, false);
    if (p.contains("attention_factor") && !p["attention_factor"].is_null()) r.attention_factor = p["attention_factor"].get<double>();
    if (p.contains("mscale") && !p["mscale"].is_null()) r.mscale = p["mscale"].get<double>();
    if (p.contains("mscale_all_dim") && !p["mscale_all_dim"].is_null()) r.mscale_all_dim = p["mscale_all_dim"].get<double>();
    r.truncate = get<bool>(p, "truncate", where, true, false);
  }
  HYLA_CHECK(r.theta > 0, "{}: rope_theta must be positive", where);
  HYLA_CHECK(r.factor > 0, "{}: factor must be positive", where);
  return r;
}

json rope_to_json(const RopeParams& r) {
  json p = {{"rope_type", r.type}, {"rope_theta", r.theta}};
  if (r.partial_rotary_factor != 1.0) p["partial_rotary_factor"] = r.partial_rotary_factor;
  if (r.type != "default") p["factor"] = r.factor;
  if (r.type == "llama3" || r.type == "yarn") p["original_max_position_embeddings"] = r.original_max_position;
  if (r.type == "llama3") {
    p["low_freq_factor"] = r.low_freq_factor;
    p["high_freq_factor"] = r.high_freq_factor;
  }
  if (r.type == "yarn") {
    p["beta_fast"] = r.beta_fast;
    p["beta_slow"] = r.beta_slow;
    if (r.attention_factor) p["attention_factor"] = *r.attention_factor;
    if (r.mscale) p["mscale"] = *r.mscale;
    if (r.mscale_all_dim) p["mscale_all_dim"] = *r.mscale_all_dim;
    p["truncate"] = r.truncate;
  }
  return p;
}

ModelConfig ModelConfig::from_json(const json& j, const std::string& label) {
  HYLA_CHECK(j.is_object(), "{}: config must be a JSON object", label);
  ModelConfig c;
  c.model_type = get<std::string>(j, "model_type", label, "", true);
  if (c.model_type == "qwen3_next") return config_from_qwen3_next(j, label);
  static const std::set<std::string> families = {"llama", "qwen2", "qwen3", "hyla_hybrid"};
  HYLA_CHECK(families.count(c.model_type),
             "{}: model_type \"{}\" is not supported (have: llama, qwen2, qwen3, qwen3_next, hyla_hybrid)", label, c.model_type);
  for (auto& [key, _] : j.items())
    HYLA_CHECK(kIgnored.count(key), "{}: unknown field \"{}\" (hyla does not know how it changes the model)", label, key);
  if (j.contains("architectures") && j["architectures"].is_array() && !j["architectures"].empty())
    c.architecture = j["architectures"][0].get<std::string>();
  else
    c.architecture = c.model_type == "qwen2" ? "Qwen2ForCausalLM" : c.model_type == "qwen3" ? "Qwen3ForCausalLM"
                   : c.model_type == "hyla_hybrid" ? "HylaHybridForCausalLM" : "LlamaForCausalLM";
  c.vocab_size = get<int64_t>(j, "vocab_size", label, 0, true);
  c.hidden_size = get<int64_t>(j, "hidden_size", label, 0, true);
  c.intermediate_size = get<int64_t>(j, "intermediate_size", label, 0, true);
  c.num_hidden_layers = get<int64_t>(j, "num_hidden_layers", label, 0, true);
  c.num_attention_heads = get<int64_t>(j, "num_attention_heads", label, 0, true);
  c.num_key_value_heads = get<int64_t>(j, "num_key_value_heads", label, c.num_attention_heads, false);
  HYLA_CHECK(c.num_attention_heads > 0, "{}: num_attention_heads must be positive", label);
  c.head_dim = get<int64_t>(j, "head_dim", label, c.hidden_size / c.num_attention_heads, false);
  c.max_position_embeddings = get<int64_t>(j, "max_position_embeddings", label, 2048, false);
  c.rms_norm_eps = get<double>(j, "rms_norm_eps", label, 1e-6, false);
  std::string act = get<std::string>(j, "hidden_act", label, "silu", false);
  HYLA_CHECK(act == "silu", "{}: hidden_act \"{}\" is not supported (only silu)", label, act);
  c.rope = parse_rope(j, label, c.max_position_embeddings);
  bool bias = get<bool>(j, "attention_bias", label, false, false);
  if (c.model_type == "qwen2") {
    // Qwen2 always has q/k/v bias and no o bias; its config has no attention_bias field.
    c.attention_bias = true;
    c.attention_out_bias = false;
  } else {
    c.attention_bias = bias;
    c.attention_out_bias = get<bool>(j, "attention_out_bias", label, bias, false);
  }
  c.mlp_bias = get<bool>(j, "mlp_bias", label, false, false);
  c.qk_norm = get<bool>(j, "qk_norm", label, c.model_type == "qwen3", false);
  c.tie_word_embeddings = get<bool>(j, "tie_word_embeddings", label, false, false);
  c.torch_dtype = get<std::string>(j, "dtype", label, get<std::string>(j, "torch_dtype", label, "float32", false), false);
  c.bos_token_id = id_list(j, "bos_token_id", label);
  c.eos_token_id = id_list(j, "eos_token_id", label);
  bool use_sw = get<bool>(j, "use_sliding_window", label, false, false);
  c.sliding_window = use_sw ? get<int64_t>(j, "sliding_window", label, 0, true) : 0;
  if (j.contains("layer_types") && !j["layer_types"].is_null()) {
    c.layer_types = get<std::vector<std::string>>(j, "layer_types", label, {}, false);
    // transformers lists "sliding_attention" layers only when use_sliding_window is on.
    if (!use_sw)
      for (auto& t : c.layer_types)
        if (t == "sliding_attention") t = "full_attention";
  }
  if (c.model_type == "qwen2" && use_sw && c.layer_types.empty()) {
    int64_t mwl = get<int64_t>(j, "max_window_layers", label, c.num_hidden_layers, false);
    for (int64_t i = 0; i < c.num_hidden_layers; ++i)
      c.layer_types.push_back(i >= mwl ? "sliding_attention" : "full_attention");
  }
  if (j.contains("linear_config")) c.linear_config = j["linear_config"];
  c.attention_nope = get<bool>(j, "attention_nope", label, false, false);
  c.attention_logn_base = get<double>(j, "attention_logn_base", label, 0.0, false);
  // Checkpoints written before the switch existed scaled by position whenever a was set.
  c.attention_logit_scale = get<std::string>(j, "attention_logit_scale", label,
                                             c.attention_logn_base > 0 ? "position" : "none", false);
  c.attention_logit_scale_constant = get<double>(j, "attention_logit_scale_constant", label, 1.0, false);
  c.attention_output_gate = get<bool>(j, "attention_output_gate", label, false, false);
  c.rms_norm_unit_offset = get<bool>(j, "rms_norm_unit_offset", label, false, false);
  c.validate(label);
  return c;
}

void ModelConfig::validate(const std::string& label) const {
  HYLA_CHECK(vocab_size > 0 && hidden_size > 0 && intermediate_size > 0 && num_hidden_layers > 0,
             "{}: vocab_size, hidden_size, intermediate_size and num_hidden_layers must be positive", label);
  HYLA_CHECK(num_key_value_heads > 0 && num_attention_heads % num_key_value_heads == 0,
             "{}: num_attention_heads ({}) must be a multiple of num_key_value_heads ({})", label,
             num_attention_heads, num_key_value_heads);
  HYLA_CHECK(head_dim > 0 && head_dim % 2 == 0, "{}: head_dim ({}) must be positive and even", label, head_dim);
  int64_t rot = static_cast<int64_t>(head_dim * rope.partial_rotary_factor);
  HYLA_CHECK(rot % 2 == 0 && rot > 0 && rot <= head_dim,
             "{}: partial_rotary_factor {} gives an odd or empty rotary dimension", label, rope.partial_rotary_factor);
  HYLA_CHECK(rms_norm_eps > 0, "{}: rms_norm_eps must be positive", label);
  HYLA_CHECK(attention_logit_scale == "none" || attention_logit_scale == "constant" || attention_logit_scale == "position",
             "{}: attention_logit_scale \"{}\" is not one of none, constant, position", label, attention_logit_scale);
  HYLA_CHECK(attention_logit_scale != "position" || attention_logn_base > 1,
             "{}: attention_logit_scale \"position\" needs attention_logn_base > 1, got {}", label, attention_logn_base);
  HYLA_CHECK(attention_logit_scale != "constant" || attention_logit_scale_constant > 0,
             "{}: attention_logit_scale_constant must be positive, got {}", label, attention_logit_scale_constant);
  if (!layer_types.empty()) {
    HYLA_CHECK(static_cast<int64_t>(layer_types.size()) == num_hidden_layers,
               "{}: layer_types has {} entries but num_hidden_layers is {}", label, layer_types.size(), num_hidden_layers);
    for (size_t i = 0; i < layer_types.size(); ++i) {
      static const std::set<std::string> kinds = {"full_attention", "sliding_attention", "gdn", "dsla", "hypenet"};
      HYLA_CHECK(kinds.count(layer_types[i]),
                 "{}: layer_types[{}] = \"{}\" is not a known mixer (have: full_attention, sliding_attention, gdn, dsla, hypenet)",
                 label, i, layer_types[i]);
      HYLA_CHECK(layer_types[i] != "sliding_attention" || sliding_window > 0,
                 "{}: layer {} is sliding_attention but sliding_window is not set", label, i);
      bool linear = layer_types[i] != "full_attention" && layer_types[i] != "sliding_attention";
      HYLA_CHECK(!linear || model_type == "hyla_hybrid",
                 "{}: layer {} has linear mixer \"{}\" but model_type is \"{}\" (use hyla_hybrid)", label, i,
                 layer_types[i], model_type);
    }
  }
}

ModelConfig ModelConfig::load(const fs::path& dir_or_file) {
  fs::path file = fs::is_directory(dir_or_file) ? dir_or_file / "config.json" : dir_or_file;
  HYLA_CHECK(fs::exists(file), "{}: no such file (expected an HF checkpoint directory with config.json)", file.string());
  json j;
  try {
    j = json::parse(io::read_text_file(file));
  } catch (const json::parse_error& e) {
    fail("{}: invalid JSON: {}", file.string(), e.what());
  }
  return from_json(j, file.string());
}

json ModelConfig::to_json() const {
  json j = {{"architectures", {architecture}},
            {"model_type", model_type},
            {"vocab_size", vocab_size},
            {"hidden_size", hidden_size},
            {"intermediate_size", intermediate_size},
            {"num_hidden_layers", num_hidden_layers},
            {"num_attention_heads", num_attention_heads},
            {"num_key_value_heads", num_key_value_heads},
            {"head_dim", head_dim},
            {"max_position_embeddings", max_position_embeddings},
            {"rms_norm_eps", rms_norm_eps},
            {"hidden_act", "silu"},
            {"rope_parameters", rope_to_json(rope)},
            {"tie_word_embeddings", tie_word_embeddings},
            {"mlp_bias", mlp_bias},
            {"dtype", torch_dtype}};
  if (model_type != "qwen2") j["attention_bias"] = attention_bias;
  if (model_type == "hyla_hybrid") {
    j["qk_norm"] = qk_norm;
    j["attention_out_bias"] = attention_out_bias;
    j["linear_config"] = linear_config;
    j["attention_nope"] = attention_nope;
    j["attention_logit_scale"] = attention_logit_scale;
    j["attention_logn_base"] = attention_logn_base;
    j["attention_logit_scale_constant"] = attention_logit_scale_constant;
    j["attention_output_gate"] = attention_output_gate;
    j["rms_norm_unit_offset"] = rms_norm_unit_offset;
  }
  auto ids = [](const std::vector<int64_t>& v) -> json {
    if (v.empty()) return nullptr;
    if (v.size() == 1) return v[0];
    return v;
  };
  j["bos_token_id"] = ids(bos_token_id);
  j["eos_token_id"] = ids(eos_token_id);
  if (!layer_types.empty()) j["layer_types"] = layer_types;
  if (sliding_window > 0) {
    j["use_sliding_window"] = true;
    j["sliding_window"] = sliding_window;
  }
  return j;
}

void ModelConfig::save(const fs::path& dir) const {
  io::write_text_atomic(dir / "config.json", to_json().dump(2) + "\n");
}

std::string ModelConfig::layer_type(int64_t layer) const {
  return layer_types.empty() ? "full_attention" : layer_types.at(layer);
}

bool ModelConfig::is_attention_layer(int64_t layer) const {
  auto t = layer_type(layer);
  return t == "full_attention" || t == "sliding_attention";
}

int64_t ModelConfig::num_params() const {
  int64_t d = hidden_size, q = num_attention_heads * head_dim, kv = num_key_value_heads * head_dim;
  int64_t attn = d * q + 2 * d * kv + q * d + (attention_bias ? q + 2 * kv : 0) + (attention_out_bias ? d : 0) +
                 (qk_norm ? 2 * head_dim : 0) + (attention_output_gate ? d * q + (attention_bias ? q : 0) : 0);
  int64_t mlp = 3 * d * intermediate_size + (mlp_bias ? 2 * intermediate_size + d : 0);
  int64_t layer = attn + mlp + 2 * d;
  return vocab_size * d * (tie_word_embeddings ? 1 : 2) + num_hidden_layers * layer + d;
}

int64_t ModelConfig::kv_bytes_per_token(int64_t elem) const {
  int64_t n_attn = 0;
  for (int64_t i = 0; i < num_hidden_layers; ++i) n_attn += is_attention_layer(i);
  return n_attn * 2 * num_key_value_heads * head_dim * elem;
}

}  // namespace hyla::model
