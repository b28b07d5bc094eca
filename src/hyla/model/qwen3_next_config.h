// The config.json of transformers' Qwen3NextForCausalLM (transformers 5.x) and hyla's
// ModelConfig, each way (docs/qwen3-next.md).
//
// A Qwen3-Next model is a hybrid hyla can hold exactly: "full_attention" layers are
// softmax attention with QK-norm and a sigmoid output gate (hyla's o_gate), every RMSNorm
// outside the GDN output norm is zero-centred (1 + w), "linear_attention" layers are
// Gated DeltaNet, every MLP is dense. The reverse direction refuses, naming the layer and
// the feature, whatever the layout cannot express.
#pragma once
#include <nlohmann/json.hpp>

#include <string>

#include "hyla/model/config.h"

namespace hyla::model {

// hyla's config of a Qwen3-Next config.json: a hyla_hybrid with rms_norm_unit_offset,
// qk_norm and attention_output_gate set and "gdn" linear layers. Sparse-MoE layers and
// unknown fields are errors naming the file (`label`) and the field.
ModelConfig config_from_qwen3_next(const nlohmann::json& j, const std::string& label);

// True for a config.json with model_type "qwen3_next".
bool is_qwen3_next_config(const nlohmann::json& j);

// Qwen3-Next's config.json for a hyla model of config `c` (every MLP dense:
// mlp_only_layers lists all layers, num_experts 0). Refuses what the layout cannot
// express: "qwen3-next export: layer 2 (dsla): ...".
nlohmann::json qwen3_next_config(const ModelConfig& c);

}  // namespace hyla::model
