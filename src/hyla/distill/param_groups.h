// Which parameter group a student tensor belongs to, and which tensors a stage trains
// (the recipe's `train` and `group_lr`, docs/distill.md). Groups are disjoint:
//   mixers      model.layers.N.linear_attn.*   the converted (linear) mixers
//   attention   model.layers.N.self_attn.*     retained softmax attention
//   mlp         model.layers.N.mlp.*
//   norms       input/post-attention layer norms and the final norm
//   embeddings  model.embed_tokens, lm_head
// "all" is their union.
#pragma once
#include <string>
#include <vector>

#include "hyla/distill/distill_recipe.h"
#include "hyla/model/decoder.h"
#include "hyla/train/adamw.h"

namespace hyla::distill {

std::string parameter_group(const std::string& hf_name);

// Freezes every parameter of `m` except those in the stage's groups; returns the trained
// ones with their LR scale (group_lr / lr) set, in the model's parameter order.
// `only_layers`, when not empty, further restricts "mixers" to those layers' mixers,
// with `earlier` layers' mixers trained at `earlier_scale` (chained fine-tuning).
std::vector<train::NamedParam> select_trained_parameters(model::CausalLM& m, const StageConfig& st,
                                                         const std::vector<int64_t>& only_layers = {},
                                                         const std::vector<int64_t>& earlier = {},
                                                         double earlier_scale = 0.0);

}  // namespace hyla::distill
