#include "hyla/model/qwen3_next_config.h"

#include <optional>
#include <set>

#include "hyla/model/mixers/common.h"
#include "hyla/model/mixers/registry.h"
#include "hyla/util/error.h"

namespace hyla::model {
using nlohmann::json;

namespace {

// Fields of Qwen3NextConfig (transformers 5.24, configuration_qwen3_next.py) and the
// bookkeeping every HF config carries. Anything else is refused.
const std::set<std::string> kKnownFields = {
    "architectures", "model_type", "transformers_version", "_name_or_path", "dtype", "torch_dtype",
    "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
    "num_key_value_heads", "head_dim", "hidden_act", "max_position_embeddings", "initializer_range",
    "rms_norm_eps", "use_cache", "tie_word_embeddings", "rope_parameters", "rope_theta", "rope_scaling",
    "partial_rotary_factor", "attention_bias", "attention_dropout", "linear_conv_kernel_dim",
    "linear_key_head_dim", "linear_value_head_dim", "linear_num_key_heads", "linear_num_value_heads",
    "decoder_sparse_step", "moe_intermediate_size", "shared_expert_intermediate_size", "num_experts_per_tok",
    "num_experts", "norm_topk_prob", "output_router_logits", "router_aux_loss_coef", "mlp_only_layers",
    "layer_types", "full_attention_interval", "pad_token_id", "bos_token_id", "eos_token_id",
    "output_attentions", "output_hidden_states", "return_dict", "id2label", "label2id", "problem_type",
    "tokenizer_class", "is_encoder_decoder", "is_decoder", "add_cross_attention", "chunk_size_feed_forward",
    "tie_encoder_decoder", "torchscript", "use_return_dict", "pretraining_tp", "auto_map"};

template <typename T>
T field(const json& j, const char* key, const std::string& label, T fallback) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  try {
    return it->get<T>();
  } catch (const json::exception&) {
    fail("{}: field \"{}\" has the wrong type ({})", label, key, it->dump());
  }
}

std::vector<int64_t> token_ids(const json& j, const char* key, const std::string& label) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return {};
  if (it->is_number_integer()) return {it->get<int64_t>()};
  return field<std::vector<int64_t>>(j, key, label, {});
}

json ids_json(const std::vector<int64_t>& ids) {
  if (ids.empty()) return nullptr;
  if (ids.size() == 1) return ids[0];
  return ids;
}

// Layer kinds: transformers builds them from full_attention_interval (default 4:
// every 4th layer attention) when layer_types is absent.
std::vector<std::string> read_layer_types(const json& j, const std::string& label, int64_t n) {
  std::vector<std::string> out;
  if (j.contains("layer_types") && !j["layer_types"].is_null()) {
    auto given = field<std::vector<std::string>>(j, "layer_types", label, {});
    HYLA_CHECK(static_cast<int64_t>(given.size()) == n, "{}: layer_types has {} entries but num_hidden_layers is {}",
               label, given.size(), n);
    for (size_t i = 0; i < given.size(); ++i) {
      HYLA_CHECK(given[i] == "full_attention" || given[i] == "linear_attention",
                 "{}: layer_types[{}] = \"{}\" is not a Qwen3-Next layer kind (full_attention, linear_attention)",
                 label, i, given[i]);
      out.push_back(given[i] == "full_attention" ? "full_attention" : "gdn");
    }
    return out;
  }
  int64_t every = field<int64_t>(j, "full_attention_interval", label, 4);
  HYLA_CHECK(every >= 1, "{}: full_attention_interval must be >= 1, got {}", label, every);
  for (int64_t i = 0; i < n; ++i) out.push_back((i + 1) % every ? "gdn" : "full_attention");
  return out;
}

// Qwen3NextDecoderLayer builds a sparse-MoE block unless the layer is in mlp_only_layers,
// num_experts is 0, or (i + 1) is not a multiple of decoder_sparse_step.
void refuse_moe(const json& j, const std::string& label, int64_t n) {
  auto dense = field<std::vector<int64_t>>(j, "mlp_only_layers", label, {});
  int64_t experts = field<int64_t>(j, "num_experts", label, 512);
  int64_t step = field<int64_t>(j, "decoder_sparse_step", label, 1);
  std::set<int64_t> dense_set(dense.begin(), dense.end());
  for (int64_t i = 0; i < n; ++i) {
    bool moe = !dense_set.count(i) && experts > 0 && step > 0 && (i + 1) % step == 0;
    HYLA_CHECK(!moe,
               "{}: layer {} has a sparse mixture-of-experts MLP (num_experts {}, not in mlp_only_layers); hyla reads "
               "Qwen3-Next checkpoints with dense MLPs only",
               label, i, experts);
  }
}

std::string layer_label(const ModelConfig& c, int64_t i) { return fmt::format("layer {} ({})", i, c.layer_type(i)); }

// Qwen3NextAttention: q_proj doubled (query and gate per head), per-head q/k RMSNorm
// (1 + w), RoPE over partial_rotary_factor of the head, causal softmax without window or
// query scaling, sigmoid gate, biases on all four projections iff attention_bias.
void check_attention_layer(const ModelConfig& c, int64_t i) {
  auto refuse = [&](const std::string& why) { fail("qwen3-next export: {}: {}", layer_label(c, i), why); };
  if (c.layer_type(i) == "sliding_attention")
    refuse(fmt::format("sliding-window attention (sliding_window {}) is not expressible: Qwen3-Next's attention "
                       "layers attend to the whole past",
                       c.sliding_window));
  if (!c.qk_norm)
    refuse("attention without QK-norm is not expressible: Qwen3-Next's attention always applies q_norm/k_norm; "
           "build the student with `hyla hybrid ... --attention-qk-norm`");
  if (c.attention_nope)
    refuse("HyPE NoPE attention (attention_nope) is not expressible: Qwen3-Next's attention always applies RoPE");
  if (c.attention_logit_scale != "none")
    refuse(fmt::format("the {} attention logit scale (attention_logit_scale) is not expressible: Qwen3-Next's "
                       "attention scales logits by head_dim^-1/2 only",
                       c.attention_logit_scale));
}

// Qwen3NextGatedDeltaNet: one shape for every layer (linear_* fields), short conv of
// width linear_conv_kernel_dim without bias, SiLU, q/k L2-normalised in the kernel,
// beta = σ(b), the output norm (eps = rms_norm_eps) gated by SiLU(z), no RoPE.
void check_gdn_layer(const ModelConfig& c, const MixerConfig& g, int64_t i) {
  auto refuse = [&](const std::string& why) { fail("qwen3-next export: {}: {}", layer_label(c, i), why); };
  if (!g.use_short_conv)
    refuse("GDN without short convolution (use_short_conv false) is not expressible: Qwen3-Next's GDN always "
           "convolves q, k and v");
  if (g.conv_bias)
    refuse("short-convolution bias (conv_bias) is not expressible: Qwen3-Next's conv1d has no bias");
  if (!g.use_gate)
    refuse("GDN without output gate (use_gate false) is not expressible: Qwen3-Next gates the output norm with "
           "SiLU(z)");
  if (g.allow_neg_eigval)
    refuse("negative eigenvalues (allow_neg_eigval, beta = 2 sigmoid) are not expressible: Qwen3-Next's "
           "beta is sigmoid(b)");
  if (g.use_rope)
    refuse("RoPE in the GDN layer (use_rope, as HyPE sets it) is not expressible: Qwen3-Next's GDN has no "
           "position encoding");
  if (g.norm_eps != c.rms_norm_eps)
    refuse(fmt::format("o_norm eps {} differs from rms_norm_eps {}: Qwen3-Next uses rms_norm_eps for every norm",
                       g.norm_eps, c.rms_norm_eps));
  HYLA_CHECK(g.hidden == c.hidden_size, "qwen3-next export: {}: mixer hidden size {} differs from hidden_size {}",
             layer_label(c, i), g.hidden, c.hidden_size);
}

std::vector<std::pair<std::string, int64_t>> gdn_shape(const MixerConfig& g) {
  return {{"linear_num_key_heads", g.n_heads},   {"linear_num_value_heads", g.value_heads()},
          {"linear_key_head_dim", g.head_k_dim}, {"linear_value_head_dim", g.v_dim()},
          {"linear_conv_kernel_dim", g.conv_size}};
}

}  // namespace

bool is_qwen3_next_config(const json& j) {
  return j.is_object() && j.contains("model_type") && j["model_type"] == "qwen3_next";
}

ModelConfig config_from_qwen3_next(const json& j, const std::string& label) {
  for (auto& [key, _] : j.items())
    HYLA_CHECK(kKnownFields.count(key), "{}: unknown Qwen3-Next field \"{}\" (hyla does not know how it changes the model)",
               label, key);
  ModelConfig c;
  c.model_type = "hyla_hybrid";
  c.architecture = "HylaHybridForCausalLM";
  auto need = [&](const char* key) {
    HYLA_CHECK(j.contains(key) && j[key].is_number_integer(), "{}: missing required integer field \"{}\"", label, key);
    return j[key].get<int64_t>();
  };
  c.vocab_size = need("vocab_size");
  c.hidden_size = need("hidden_size");
  c.intermediate_size = need("intermediate_size");
  c.num_hidden_layers = need("num_hidden_layers");
  c.num_attention_heads = need("num_attention_heads");
  // Defaults are Qwen3NextConfig's, not Llama's (head_dim 256, two KV heads, 32K positions).
  c.num_key_value_heads = field<int64_t>(j, "num_key_value_heads", label, 2);
  c.head_dim = field<int64_t>(j, "head_dim", label, 256);
  c.max_position_embeddings = field<int64_t>(j, "max_position_embeddings", label, 32768);
  c.rms_norm_eps = field<double>(j, "rms_norm_eps", label, 1e-6);
  auto act = field<std::string>(j, "hidden_act", label, "silu");
  HYLA_CHECK(act == "silu", "{}: hidden_act \"{}\" is not supported (only silu)", label, act);
  // Qwen3NextConfig defaults partial_rotary_factor to 0.25 when neither place gives it.
  json rope_src = j;
  bool partial_given = j.contains("partial_rotary_factor") ||
                       (j.contains("rope_parameters") && j["rope_parameters"].is_object() &&
                        j["rope_parameters"].contains("partial_rotary_factor"));
  if (!partial_given) rope_src["partial_rotary_factor"] = 0.25;
  c.rope = parse_rope(rope_src, label, c.max_position_embeddings);
  c.attention_bias = c.attention_out_bias = field<bool>(j, "attention_bias", label, false);
  c.qk_norm = true;
  c.attention_output_gate = true;
  c.rms_norm_unit_offset = true;
  c.tie_word_embeddings = field<bool>(j, "tie_word_embeddings", label, false);
  c.torch_dtype = field<std::string>(j, "dtype", label, field<std::string>(j, "torch_dtype", label, "float32"));
  c.bos_token_id = token_ids(j, "bos_token_id", label);
  c.eos_token_id = token_ids(j, "eos_token_id", label);
  HYLA_CHECK(c.num_hidden_layers > 0, "{}: num_hidden_layers must be positive", label);
  c.layer_types = read_layer_types(j, label, c.num_hidden_layers);
  refuse_moe(j, label, c.num_hidden_layers);
  c.linear_config = {{"gdn",
                      {{"num_heads", field<int64_t>(j, "linear_num_key_heads", label, 16)},
                       {"num_v_heads", field<int64_t>(j, "linear_num_value_heads", label, 32)},
                       {"head_k_dim", field<int64_t>(j, "linear_key_head_dim", label, 128)},
                       {"head_v_dim", field<int64_t>(j, "linear_value_head_dim", label, 128)},
                       {"conv_size", field<int64_t>(j, "linear_conv_kernel_dim", label, 4)},
                       {"use_short_conv", true},
                       {"conv_bias", false},
                       {"use_gate", true},
                       {"allow_neg_eigval", false},
                       {"norm_eps", c.rms_norm_eps}}}};
  c.validate(label);
  for (int64_t i = 0; i < c.num_hidden_layers; ++i)
    if (!c.is_attention_layer(i)) validate_mixer_config(mixer_config_from_model(c, i, "gdn"), "gdn");
  return c;
}

json qwen3_next_config(const ModelConfig& c) {
  std::optional<MixerConfig> gdn;
  int64_t first_gdn = -1;
  std::vector<std::string> kinds;
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    std::string kind = c.layer_type(i);
    if (c.is_attention_layer(i)) {
      check_attention_layer(c, i);
      kinds.push_back("full_attention");
      continue;
    }
    if (kind != "gdn")
      fail("qwen3-next export: {}: {} layers are not expressible: Qwen3-Next's linear_attention layers are Gated "
           "DeltaNet",
           layer_label(c, i), kind);
    MixerConfig g = mixer_config_from_model(c, i, kind);
    check_gdn_layer(c, g, i);
    kinds.push_back("linear_attention");
    if (!gdn) {
      gdn = g;
      first_gdn = i;
      continue;
    }
    auto want = gdn_shape(*gdn), got = gdn_shape(g);
    for (size_t f = 0; f < want.size(); ++f)
      HYLA_CHECK(want[f].second == got[f].second,
                 "qwen3-next export: {}: GDN {} = {} differs from layer {}'s {}: Qwen3-Next's config holds one GDN "
                 "shape for all layers",
                 layer_label(c, i), got[f].first, got[f].second, first_gdn, want[f].second);
  }
  HYLA_CHECK(!c.mlp_bias, "qwen3-next export: mlp_bias is not expressible: Qwen3NextMLP has no biases");
  // Without a GDN layer the linear_* fields are unused; fill them with hyla's defaults.
  MixerConfig g = gdn ? *gdn : mixer_config_from_model(c, 0, "gdn");
  std::vector<int64_t> all_layers;
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) all_layers.push_back(i);
  json rope = rope_to_json(c.rope);
  rope["partial_rotary_factor"] = c.rope.partial_rotary_factor;  // Qwen3-Next's default is 0.25
  return json{
      {"architectures", {"Qwen3NextForCausalLM"}},
      {"model_type", "qwen3_next"},
      {"vocab_size", c.vocab_size},
      {"hidden_size", c.hidden_size},
      {"intermediate_size", c.intermediate_size},
      {"num_hidden_layers", c.num_hidden_layers},
      {"num_attention_heads", c.num_attention_heads},
      {"num_key_value_heads", c.num_key_value_heads},
      {"head_dim", c.head_dim},
      {"hidden_act", "silu"},
      {"max_position_embeddings", c.max_position_embeddings},
      {"initializer_range", g.init_std},
      {"rms_norm_eps", c.rms_norm_eps},
      {"use_cache", true},
      {"tie_word_embeddings", c.tie_word_embeddings},
      {"rope_parameters", rope},
      // One switch for q/k/v/o (and gate) biases: a bias hyla lacks is written as zeros.
      {"attention_bias", c.attention_bias || c.attention_out_bias},
      {"attention_dropout", 0.0},
      {"linear_conv_kernel_dim", g.conv_size},
      {"linear_key_head_dim", g.head_k_dim},
      {"linear_value_head_dim", g.v_dim()},
      {"linear_num_key_heads", g.n_heads},
      {"linear_num_value_heads", g.value_heads()},
      // Dense MLP in every layer: no experts, and every layer listed as MLP-only.
      {"decoder_sparse_step", 1},
      {"num_experts", 0},
      {"num_experts_per_tok", 0},
      {"moe_intermediate_size", c.intermediate_size},
      {"shared_expert_intermediate_size", c.intermediate_size},
      {"norm_topk_prob", true},
      {"output_router_logits", false},
      {"router_aux_loss_coef", 0.0},
      {"mlp_only_layers", all_layers},
      {"layer_types", kinds},
      {"bos_token_id", ids_json(c.bos_token_id)},
      {"eos_token_id", ids_json(c.eos_token_id)},
      {"pad_token_id", nullptr},
      {"dtype", c.torch_dtype},
  };
}

}  // namespace hyla::model
