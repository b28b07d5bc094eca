// Causal depthwise 1-d convolution with a cached tail (gdn.md step 1; methods.md §2.2
// step 2): y_c(t) = Σ_{i<W} w_c[i] · x_c(t − W + 1 + i), zeros (or the cached tail) before
// the sequence start, optionally followed by SiLU. The same call serves prefill and
// decode (T = 1): the tail holds the last W − 1 *inputs* per channel.
#pragma once
#include <torch/torch.h>

namespace hyla::ops {

struct ShortConvResult {
  torch::Tensor y;     // [B, T, C] in x's dtype
  torch::Tensor tail;  // [N, C, W−1]: the last W − 1 inputs of each sequence
};

// x [B, T, C]; weight [C, W] or [C, 1, W] (PyTorch / fla Conv1d layout); bias [C] or
// undefined; tail [N, C, W−1] or undefined (zeros); cu_seqlens [N+1] (B == 1) or
// undefined (N = B).
ShortConvResult short_conv(const torch::Tensor& x, const torch::Tensor& weight,
                           const torch::Tensor& bias, const torch::Tensor& tail,
                           const torch::Tensor& cu_seqlens, bool silu);

}  // namespace hyla::ops
