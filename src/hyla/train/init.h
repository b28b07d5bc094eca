// Weight initialisation for training from scratch (GPT-2 / Llama practice): every
// projection and embedding ~ N(0, std); output projections of each block (o_proj,
// down_proj) scaled by 1/sqrt(2·layers) so the residual stream does not grow with
// depth; norm weights 1; mixer-specific parameters keep their own init.
#pragma once
#include "hyla/model/decoder.h"

namespace hyla::train {
void init_weights(model::CausalLM& m, double std = 0.02);
}
