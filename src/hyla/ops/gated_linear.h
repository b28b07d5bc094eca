// Gated linear attention (GLA) without the delta term, in the same three forms as
// gated_delta.h (recurrent / chunked / step):
//   S_t = diag(exp(g_t)) S_{t−1} + k_t v_tᵀ,   o_t = S_tᵀ (scale · q_t)   (write, then read).
// The log gate g (≤ 0) is either per key dimension, g [B, T, H, dk] (GLA; DSLA's two
// states, dsla.md), or one scalar per head and token, g [B, T, H] (simple GLA; Lightning
// attention with a constant per-head decay, hypenet.md / methods.md §6.1).
#pragma once
#include <torch/torch.h>

#include "hyla/ops/recurrence.h"

namespace hyla::ops {

// q, k: [B, T, H, dk]; v: [B, T, H, dv]; g: [B, T, H, dk] or [B, T, H].
RecurrenceResult gated_linear_recurrent(const torch::Tensor& q, const torch::Tensor& k,
                                        const torch::Tensor& v, const torch::Tensor& g,
                                        const RecurrenceOptions& opt = {});
// Chunk-parallel form (methods.md §4.1 "chunkwise GLA"): per-key-dim gates use 16-token
// sub-chunks re-based at a reference position so no exp(−Γ) can overflow.
RecurrenceResult gated_linear_chunked(const torch::Tensor& q, const torch::Tensor& k,
                                      const torch::Tensor& v, const torch::Tensor& g,
                                      const RecurrenceOptions& opt = {});
// One token: q, k [B, H, dk]; v [B, H, dv]; g [B, H, dk] or [B, H]; state [B, H, dk, dv]
// (undefined = zeros). Returns o [B, H, dv] and the new state.
RecurrenceResult gated_linear_step(const torch::Tensor& q, const torch::Tensor& k,
                                   const torch::Tensor& v, const torch::Tensor& g,
                                   const torch::Tensor& state, double scale = -1);

}  // namespace hyla::ops
