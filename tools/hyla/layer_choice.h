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

  void add(CLI::App& app);
  // Whether any flag of the layer choice was given (a recipe then may not give one too).
  bool any_given() const;
  // Fills opt.layer_types, opt.linear_config, opt.hype for `teacher`; errors name the flag.
  void apply(const model::ModelConfig& teacher, model::HybridOptions& opt) const;
};

std::vector<std::string> split_commas(const std::string& s);

}  // namespace hyla::cli
