// How many times activation checkpointing recomputed a decoder layer in a backward pass,
// process-wide (all models). ForwardOptions::checkpoint_layers applies to training
// forwards only: with a cache, packed sequences (cu_seqlens) or mixer_outputs the layers
// run plainly, so this count is the observable proof that the recompute path ran (the
// trainer's metrics report it per step; the tests assert it).
#pragma once
#include <cstdint>

namespace hyla::model {

int64_t checkpointed_layer_recomputes();

}  // namespace hyla::model
