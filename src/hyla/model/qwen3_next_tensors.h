// Tensors of a hyla model and of transformers' Qwen3NextForCausalLM, each way
// (docs/qwen3-next.md "Tensors"). The fused Qwen3-Next projections interleave per key
// head (modeling_qwen3_next.py, transformers 5.24):
//   self_attn.q_proj          rows per attention head h: [query_h (D), gate_h (D)]
//   linear_attn.in_proj_qkvz  rows per key head g: [q_g (dk), k_g (dk), v (r·dv), z (r·dv)]
//                             for the r = HV/H value heads g·r … g·r+r−1
//   linear_attn.in_proj_ba    rows per key head g: [b (r), a (r)]
//   linear_attn.conv1d        channels [q (H·dk), k (H·dk), v (HV·dv)]
// and RMSNorms other than the GDN output norm are zero-centred (weight w − 1).
#pragma once
#include <torch/torch.h>

#include <filesystem>
#include <map>
#include <string>

#include "hyla/io/safetensors.h"
#include "hyla/model/decoder.h"

namespace hyla::model {

// Qwen3-Next's tensors of `m` (whose config qwen3_next_config accepted). Attention
// without an output gate gets zero gate rows and o_proj × 2 (σ(0) = 1/2, exact in binary
// floating point); norms not yet zero-centred move by −1; biases the layout has and hyla
// lacks are zeros.
io::NamedTensors qwen3_next_tensors(CausalLM& m);

// hyla's tensors, by hyla's (HF-layout) names, of the Qwen3-Next checkpoint in `dir`,
// for `c` = config_from_qwen3_next(its config). A missing, mis-shaped or unexpected tensor
// is an error naming the checkpoint and the Qwen3-Next tensor; `mtp.*` (multi-token
// prediction heads) are skipped as transformers skips them.
std::map<std::string, torch::Tensor> tensors_from_qwen3_next(const std::filesystem::path& dir, const ModelConfig& c);

// True if `dir`'s config.json says model_type "qwen3_next".
bool is_qwen3_next_checkpoint(const std::filesystem::path& dir);

}  // namespace hyla::model
