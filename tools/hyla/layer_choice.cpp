#include "layer_choice.h"

#include <sstream>

#include "hyla/distill/convert.h"
#include "hyla/io/atomic_file.h"
#include "hyla/util/error.h"

namespace hyla::cli {

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

void LayerChoiceArgs::add(CLI::App& app) {
  app.add_option("--mixer", mixer, "linear mixer for converted layers: gdn | dsla | hypenet")->capture_default_str();
  app.add_option("--attention-every", every, "keep layers 0, k, 2k, ... as attention (default 4: 1 in 4)");
  app.add_option("--attention-layers", attention_layers, "layers that keep attention, e.g. 0,5")->delimiter(',');
  app.add_option("--attention-share", share,
                 "share of layers kept as attention, spread uniformly (0.25 of 8 layers: 0 and 4)");
  app.add_option("--layer-types", layer_types,
                 "every layer's kind, comma-separated (full_attention, sliding_attention, gdn, dsla, hypenet)");
  app.add_option("--linear-config", linear_config,
                 "mixer hyper-parameters as JSON, or @file.json (keys: docs/hybrid.md)");
  app.add_flag("--hype", hype, "HyPE: RoPE in linear layers, NoPE + log-length query scaling in attention");
  app.add_option("--hype-base", hype_base, "HyPE's a in ln(t+a)/ln(a)")->capture_default_str();
  app.add_option("--hype-scale", hype_scale,
                 "HyPE attention logit scale: position (ln(t+a)/ln(a), inference only) | constant | none")
      ->capture_default_str();
  app.add_option("--hype-scale-constant", hype_constant, "the scale of --hype-scale constant");
  app.add_option("--attention-output-gate", gate, "HALO's sigmoid output gate on attention: auto (on with --hype) | on | off")
      ->capture_default_str();
  app.add_flag("--attention-qk-norm", qk_norm,
               "give attention layers a QK-norm with unit weights (needed to export Llama/Qwen2 students to Qwen3-Next)");
}

bool LayerChoiceArgs::any_given() const {
  return every >= 0 || !attention_layers.empty() || share >= 0 || !layer_types.empty() || !linear_config.empty() ||
         hype || mixer != "gdn" || hype_scale != "position" || hype_constant != 0 || gate != "auto" || qk_norm;
}

void LayerChoiceArgs::apply(const model::ModelConfig& tc, model::HybridOptions& opt) const {
  int given = (every >= 0) + !attention_layers.empty() + (share >= 0) + !layer_types.empty();
  HYLA_CHECK(given <= 1, "give one of --attention-every, --attention-layers, --attention-share, --layer-types");
  int64_t L = tc.num_hidden_layers;
  if (!layer_types.empty()) opt.layer_types = split_commas(layer_types);
  else if (!attention_layers.empty()) opt.layer_types = model::layer_types_keeping(L, attention_layers, mixer);
  else if (share >= 0)
    opt.layer_types =
        model::layer_types_keeping(L, distill::attention_layers_for_share(L, share, "--attention-share"), mixer);
  else opt.layer_types = model::interleave_layer_types(L, every >= 0 ? every : 4, mixer);
  if (!linear_config.empty()) {
    std::string text = linear_config[0] == '@' ? io::read_text_file(linear_config.substr(1)) : linear_config;
    try {
      opt.linear_config = nlohmann::json::parse(text);
    } catch (const nlohmann::json::parse_error& e) {
      fail("--linear-config: invalid JSON: {}", e.what());
    }
  }
  opt.hype = hype;
  opt.hype_logn_base = hype_base;
  opt.hype_logit_scale = hype_scale;
  opt.hype_scale_constant = hype_constant;
  opt.attention_qk_norm = qk_norm;
  HYLA_CHECK(gate == "auto" || gate == "on" || gate == "off", "--attention-output-gate \"{}\" is not one of auto, on, off",
             gate);
  if (gate != "auto") opt.attention_output_gate = gate == "on";
}

}  // namespace hyla::cli
