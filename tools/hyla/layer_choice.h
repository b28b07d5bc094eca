// The layer-choice flags `hyla hybrid` and `hyla convert` share: which layers keep
// softmax attention (interleave, explicit list, share, or every layer's kind), the
// linear mixer, its hyper-parameters, and HyPE.
#pragma once
#include <CLI/CLI.hpp>

#include <string>
#include <vector>

#include "hyla/model/config.h"
#include "hyla/model/hybrid.h"

namespace hyla::cli {

struct LayerChoiceArgs {
  std::string mixer = "gdn", layer_types, linear_config;
  int64_t every = -1;  // unset: 4
  std::vector<int64_t> attention_layers;
  double share = -1;   // unset
  bool hype = false;
  double hype_base = 500;
  std::string hype_scale = "position";  // HyPE's attention logit scale: position | constant | none
  double hype_constant = 0;             // the scale of hype_scale "constant"
  std::string gate = "auto";            // HALO's attention output gate: auto (on with HyPE) | on | off
  bool qk_norm = false;                 // QK-norm with unit weights in attention (Qwen3-Next export)

  void add(CLI::App& app);
  // Whether any flag of the layer choice was given (a recipe then may not give one too).
  bool any_given() const;
  // Fills opt's layer types, linear_config, HyPE, gate and QK-norm fields for `teacher`;
  // errors name the flag.
  void apply(const model::ModelConfig& teacher, model::HybridOptions& opt) const;
};

std::vector<std::string> split_commas(const std::string& s);

}  // namespace hyla::cli
