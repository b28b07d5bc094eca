// Whether a checkpoint's tensors are the ones its config.json implies, read from the
// safetensors headers alone (no tensor data touched): every parameter present, floating
// point, of the implied shape, and no stray tensor. `hyla info` runs it without loading
// weights; load_causal_lm runs it before it copies any.
#pragma once
#include <filesystem>

#include "hyla/io/safetensors.h"
#include "hyla/model/decoder.h"

namespace hyla::model {

// Throws hyla::Error naming the checkpoint and the first tensor that contradicts the
// config of `skeleton` (a model built from the same config.json).
void check_checkpoint_tensors(const std::filesystem::path& dir, CausalLM& skeleton, const io::TensorStore& store);

}  // namespace hyla::model
