// The shape of a hybrid student (pipeline.md §0): the teacher's embeddings, norms, MLPs
// and head, with each layer either keeping softmax attention or getting a linear mixer.
// This file decides the layer kinds and builds the student from the teacher; how the
// linear mixers are then initialised and distilled lives in distill/.
#pragma once
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "hyla/model/config.h"
#include "hyla/model/decoder.h"

namespace hyla::model {

// Uniform interleave (pipeline.md §1, methods.md §5.2): layers 0, every, 2·every, ...
// keep attention, the others become `mixer`.
std::vector<std::string> interleave_layer_types(int64_t n_layers, int64_t every, const std::string& mixer);
// Layers in `attention_layers` keep attention, the others become `mixer`.
std::vector<std::string> layer_types_keeping(int64_t n_layers, const std::vector<int64_t>& attention_layers,
                                             const std::string& mixer);

struct HybridOptions {
  std::vector<std::string> layer_types;           // one per layer
  nlohmann::json linear_config = nlohmann::json::object();  // mixers' hyper-parameters (registry.h)
  // HyPE (hypenet.md): RoPE in the linear layers, none in attention, whose queries are
  // scaled by ln(t + a)/ln(a). a = 0 leaves the teacher's position scheme alone.
  bool hype = false;
  double hype_logn_base = 500;
};

// The student's config: the teacher's, with model_type hyla_hybrid and the given layers.
// Checks every mixer's hyper-parameters (errors name the layer).
ModelConfig hybrid_config(const ModelConfig& teacher, const HybridOptions& opt);

// Builds the student of `config` and copies from `teacher` every tensor the two share:
// embeddings, norms, MLPs, head, and the mixer of each layer whose kind is unchanged.
// Linear mixers that replace attention keep their fresh (fla-style) init. Returns the
// student on the CPU in float32.
CausalLM hybrid_from_teacher(CausalLM& teacher, const ModelConfig& config);

}  // namespace hyla::model
