// The normalisations the linear mixers apply inside their recurrence path.
#pragma once
#include <torch/torch.h>

#include <string>

namespace hyla::ops {

// x / sqrt(Σx² + eps) over the last dim, eps inside the root (fla's l2norm; methods.md
// §2.2 step 4). Computes in float32 (float64 stays), returns x's dtype.
torch::Tensor l2_normalize(const torch::Tensor& x, double eps = 1e-6);

// RMSNorm over the last dim as Hugging Face computes it: float32 math, result cast to
// x's dtype, then times the weight.
torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps);

// fla's FusedRMSNormGated (gdn.md step 7): rms_norm(x) · weight · act(gate), act =
// "silu"/"swish" or "sigmoid", all in float32, result in x's dtype.
torch::Tensor rms_norm_gated(const torch::Tensor& x, const torch::Tensor& gate,
                             const torch::Tensor& weight, double eps,
                             const std::string& activation = "silu");

}  // namespace hyla::ops
