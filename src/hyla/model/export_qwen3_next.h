// Export of a hyla model (softmax attention with QK-norm + Gated DeltaNet layers) to the
// checkpoint layout of transformers' Qwen3NextForCausalLM, which vLLM and SGLang also
// serve (docs/qwen3-next.md). What the layout cannot express (DSLA/HypeNet layers,
// attention without QK-norm, HyPE, sliding windows, GDN without short conv or gate, ...)
// is refused with an error naming the layer and the feature, before anything is written.
#pragma once
#include <filesystem>
#include <optional>

#include "hyla/model/decoder.h"

namespace hyla::model {

// Writes `out`/config.json and `out`/model.safetensors (sharded past 5 GiB, HF layout),
// each atomically, with tensors cast to `dtype` (none: as they are in `m`). The tensor
// mapping: qwen3_next_tensors.h; the config: qwen3_next_config.h.
void export_qwen3_next(CausalLM& m, const std::filesystem::path& out,
                       std::optional<torch::ScalarType> dtype = std::nullopt);

}  // namespace hyla::model
