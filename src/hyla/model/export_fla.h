// Export of a hyla hybrid (softmax attention + Gated DeltaNet layers) to the checkpoint
// format of flash-linear-attention's GatedDeltaNetForCausalLM (fla 0.6): a config.json
// with model_type "gated_deltanet" whose `attn` spec names the attention layers, and a
// safetensors file under fla's tensor names (docs/hybrid.md "Export to fla").
//
// Only models that fla computes exactly as hyla does are exported. Everything fla's model
// cannot express (DSLA/HypeNet layers, QK-norm, scaled or partial RoPE, o_proj bias, HyPE,
// GDN RoPE or conv bias, per-layer GDN shapes, ...) is refused with an error naming the
// layer and the feature, before anything is written.
#pragma once
#include <nlohmann/json.hpp>

#include <filesystem>
#include <optional>
#include <string>

#include "hyla/model/decoder.h"

namespace hyla::model {

// fla's config.json for `m` (fla's fuse_* defaults; "dtype" float32). Refuses what fla
// cannot express.
nlohmann::json fla_config(const CausalLM& m);

// fla's name of one of hyla's (HF-layout) tensors, e.g. model.layers.3.linear_attn.A_log
// -> model.layers.3.attn.A_log; model.embed_tokens.weight -> model.embeddings.weight.
std::string fla_tensor_name(const std::string& hf_name);

// Writes `out`/config.json and `out`/model.safetensors (sharded past 5 GiB, HF layout),
// each atomically, with tensors cast to `dtype` (none: as they are in `m`).
void export_fla(CausalLM& m, const std::filesystem::path& out, std::optional<torch::ScalarType> dtype = std::nullopt);

}  // namespace hyla::model
