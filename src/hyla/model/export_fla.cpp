#include "hyla/model/export_fla.h"

#include "hyla/io/atomic_file.h"
#include "hyla/io/safetensors.h"
#include "hyla/model/mixers/gdn.h"
#include "hyla/model/mixers/registry.h"
#include "hyla/util/error.h"

namespace hyla::model {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string layer_label(const ModelConfig& c, int64_t i) { return fmt::format("layer {} ({})", i, c.layer_type(i)); }

// What fla's Attention (fla/layers/attn.py, built by fla/models/modeling_utils.py
// get_attention) computes: q/k/v projections with an optional shared bias, o_proj without
// bias, head_dim = hidden_size / num_heads, RoPE with rope_theta over the whole head, no
// QK-norm, causal softmax over an optional window. Anything else changes the logits.
void check_attention_layer(const ModelConfig& c, int64_t i) {
  auto refuse = [&](const std::string& why) { fail("fla export: {}: {}", layer_label(c, i), why); };
  if (c.qk_norm)
    refuse("QK-norm (qk_norm, Qwen3's q_norm/k_norm) is not expressible: fla's get_attention builds Attention "
           "without qk_norm");
  if (c.attention_out_bias)
    refuse("o_proj bias (attention_out_bias; Llama's attention_bias covers o_proj too) is not expressible: "
           "fla's Attention has o_proj without bias");
  if (c.head_dim * c.num_attention_heads != c.hidden_size)
    refuse(fmt::format("head_dim {} x {} heads = {} differs from hidden_size {}: fla's Attention fixes "
                       "head_dim = hidden_size / num_heads",
                       c.head_dim, c.num_attention_heads, c.head_dim * c.num_attention_heads, c.hidden_size));
  if (c.attention_nope)
    refuse("HyPE NoPE attention (attention_nope) is not expressible: fla's Attention always applies RoPE");
  if (c.attention_logit_scale != "none")
    refuse(fmt::format("the {} attention logit scale (attention_logit_scale, HyPE) is not expressible in fla's Attention",
                       c.attention_logit_scale));
  if (c.attention_output_gate)
    refuse("the attention output gate (attention_output_gate, HALO's o_gate) is not expressible: fla's Attention has "
           "no output gate");
  if (c.rms_norm_unit_offset)
    refuse("zero-centred norms (rms_norm_unit_offset, Qwen3-Next's 1 + w) are not expressible: fla's RMSNorm "
           "multiplies by w");
  if (c.rope.type != "default")
    refuse(fmt::format("RoPE scaling \"{}\" is not expressible: fla's Attention has plain RoPE (rope_theta only)",
                       c.rope.type));
  if (c.rope.partial_rotary_factor != 1.0)
    refuse(fmt::format("partial rotary (partial_rotary_factor {}) is not expressible: fla rotates the whole head",
                       c.rope.partial_rotary_factor));
}

// fla's model builds every GDN layer from one config (GatedDeltaNetBlock): no RoPE, no
// conv bias, o_norm eps = the model's norm_eps, value head dim = head_dim * expand_v.
void check_gdn_layer(const ModelConfig& c, const MixerConfig& g, int64_t i) {
  auto refuse = [&](const std::string& why) { fail("fla export: {}: {}", layer_label(c, i), why); };
  if (g.use_rope)
    refuse("RoPE in the GDN layer (use_rope, as HyPE sets it) is not expressible: fla's GatedDeltaNet has no "
           "position encoding");
  if (g.use_short_conv && g.conv_bias)
    refuse("short-convolution bias (conv_bias) is not expressible: fla's model builds GatedDeltaNet without it");
  if (g.beta_bias)
    refuse("a b_proj bias (beta_bias, Taylor-Calibrate's --beta-bias) is not expressible: fla's b_proj has none");
  if (g.norm_eps != c.rms_norm_eps)
    refuse(fmt::format("o_norm eps {} differs from rms_norm_eps {}: fla uses one norm_eps for every norm",
                       g.norm_eps, c.rms_norm_eps));
  HYLA_CHECK(g.hidden == c.hidden_size, "fla export: {}: mixer hidden size {} differs from hidden_size {}",
             layer_label(c, i), g.hidden, c.hidden_size);
  // fla derives head_v_dim = int(head_dim * expand_v); the ratio must give dv back exactly.
  double expand_v = double(g.v_dim()) / double(g.head_k_dim);
  if (static_cast<int64_t>(double(g.head_k_dim) * expand_v) != g.v_dim())
    refuse(fmt::format("value head dim {} is not recovered by fla's int(head_dim {} * expand_v {})", g.v_dim(),
                       g.head_k_dim, expand_v));
}

// Fields of a GDN layer that fla's single config holds for all layers.
std::vector<std::pair<std::string, double>> gdn_shape(const MixerConfig& g) {
  return {{"num_heads", double(g.n_heads)},        {"num_v_heads", double(g.value_heads())},
          {"head_k_dim", double(g.head_k_dim)},    {"head_v_dim", double(g.v_dim())},
          {"use_short_conv", double(g.use_short_conv)}, {"conv_size", double(g.use_short_conv ? g.conv_size : 0)},
          {"use_gate", double(g.use_gate)},        {"allow_neg_eigval", double(g.allow_neg_eigval)},
          {"norm_eps", g.norm_eps}};
}

json token_ids(const std::vector<int64_t>& ids) {
  if (ids.empty()) return nullptr;
  if (ids.size() == 1) return ids[0];
  return ids;
}

}  // namespace

json fla_config(const CausalLM& m) {
  const ModelConfig& c = m->config();
  std::vector<int64_t> full_layers, sliding_layers;
  std::optional<MixerConfig> gdn;
  int64_t first_gdn = -1;
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    std::string kind = c.layer_type(i);
    if (c.is_attention_layer(i)) {
      check_attention_layer(c, i);
      (kind == "sliding_attention" ? sliding_layers : full_layers).push_back(i);
      continue;
    }
    if (kind != "gdn")
      fail("fla export: {}: {} layers are not expressible: fla's GatedDeltaNetForCausalLM has only softmax "
           "attention and Gated DeltaNet layers",
           layer_label(c, i), kind);
    auto* impl = dynamic_cast<GatedDeltaNetImpl*>(m->layer(i)->mixer().get());
    HYLA_CHECK(impl != nullptr, "fla export: {}: the layer's mixer is not a Gated DeltaNet", layer_label(c, i));
    const MixerConfig& g = impl->config();
    check_gdn_layer(c, g, i);
    if (!gdn) {
      gdn = g;
      first_gdn = i;
      continue;
    }
    auto want = gdn_shape(*gdn), got = gdn_shape(g);
    for (size_t f = 0; f < want.size(); ++f)
      HYLA_CHECK(want[f].second == got[f].second,
                 "fla export: {}: GDN {} = {} differs from layer {}'s {}: fla's config holds one GDN shape for all "
                 "layers",
                 layer_label(c, i), got[f].first, got[f].second, first_gdn, want[f].second);
  }
  HYLA_CHECK(!c.mlp_bias, "fla export: mlp_bias is not expressible: fla's GatedMLP has no biases");
  // With no GDN layer the GDN fields are unused by fla; fill them with what hyla would build.
  MixerConfig g = gdn ? *gdn : mixer_config_from_model(c, 0, "gdn");

  // Attention layers: one spec per window. hyla's sliding mask keeps keys with
  // 0 <= q - k < w (attention.cpp); fla passes flash-attn window_size (w - 1, 0), which
  // keeps keys with 0 <= q - k <= w - 1: the same w keys, so window_size = w.
  std::vector<json> specs;
  for (const auto* layers : {&full_layers, &sliding_layers}) {
    if (layers->empty()) continue;
    json s = {{"layers", *layers},
              {"num_heads", c.num_attention_heads},
              {"num_kv_heads", c.num_key_value_heads},
              {"qkv_bias", c.attention_bias},
              {"window_size", layers == &sliding_layers ? json(c.sliding_window) : json(nullptr)},
              {"rope_theta", c.rope.theta}};
    specs.push_back(std::move(s));
  }
  json attn = specs.empty() ? json(nullptr) : specs.size() == 1 ? specs[0] : json(specs);

  return json{
      {"architectures", {"GatedDeltaNetForCausalLM"}},
      {"model_type", "gated_deltanet"},
      {"attn_mode", "chunk"},
      {"hidden_size", c.hidden_size},
      {"num_hidden_layers", c.num_hidden_layers},
      {"vocab_size", c.vocab_size},
      {"intermediate_size", c.intermediate_size},
      {"hidden_ratio", 4},  // unused when intermediate_size is given
      {"hidden_act", "swish"},
      {"head_dim", g.head_k_dim},
      {"num_heads", g.n_heads},
      {"num_v_heads", g.value_heads()},
      {"expand_v", double(g.v_dim()) / double(g.head_k_dim)},
      {"use_gate", g.use_gate},
      {"output_gate_activation", "swish"},
      {"use_short_conv", g.use_short_conv},
      {"conv_size", g.conv_size},
      {"allow_neg_eigval", g.allow_neg_eigval},
      {"norm_eps", c.rms_norm_eps},
      {"attn", attn},
      {"max_position_embeddings", c.max_position_embeddings},
      {"tie_word_embeddings", c.tie_word_embeddings},
      {"bos_token_id", token_ids(c.bos_token_id)},
      {"eos_token_id", token_ids(c.eos_token_id)},
      {"pad_token_id", nullptr},
      {"initializer_range", g.init_std},
      {"use_cache", true},
      {"fuse_norm", true},
      {"fuse_swiglu", true},
      {"fuse_cross_entropy", true},
      {"fuse_linear_cross_entropy", false},
      {"use_l2warp", false},
      {"attnres_block_size", nullptr},
      {"dtype", "float32"},
  };
}

std::string fla_tensor_name(const std::string& name) {
  auto starts = [&](const std::string& s, const std::string& p) { return s.rfind(p, 0) == 0; };
  if (name == "model.embed_tokens.weight") return "model.embeddings.weight";
  if (name == "model.norm.weight" || name == "lm_head.weight") return name;
  const std::string layers = "model.layers.";
  if (starts(name, layers)) {
    size_t dot = name.find('.', layers.size());
    if (dot != std::string::npos) {
      std::string head = name.substr(0, dot + 1), rest = name.substr(dot + 1);
      static const std::vector<std::pair<std::string, std::string>> renames = {
          {"input_layernorm.", "attn_norm."}, {"post_attention_layernorm.", "mlp_norm."},
          {"self_attn.", "attn."},            {"linear_attn.", "attn."},
          {"mlp.", "mlp."}};
      for (auto& [from, to] : renames)
        if (starts(rest, from)) return head + to + rest.substr(from.size());
    }
  }
  fail("fla export: tensor {} has no counterpart in fla's GatedDeltaNetForCausalLM", name);
}

void export_fla(CausalLM& m, const fs::path& out, std::optional<torch::ScalarType> dtype) {
  json config = fla_config(m);  // refuses before anything is written
  io::NamedTensors tensors;
  std::optional<torch::ScalarType> saved;
  for (auto& [name, t] : m->state_tensors()) {
    auto c = t.detach().to(torch::kCPU);
    if (dtype) c = c.to(*dtype);
    HYLA_CHECK(!saved || *saved == c.scalar_type(), "fla export: tensor {} is {} but others are {}; pass a dtype",
               name, c10::toString(c.scalar_type()), c10::toString(*saved));
    saved = c.scalar_type();
    tensors.emplace_back(fla_tensor_name(name), c.contiguous());
  }
  if (saved) config["dtype"] = dtype_name(*saved);
  fs::create_directories(out);
  io::save_checkpoint_tensors(out, tensors);
  io::write_text_atomic(out / "config.json", config.dump(2) + "\n");
}

}  // namespace hyla::model
