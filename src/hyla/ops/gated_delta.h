// The gated delta rule (gdn.md; methods.md §2.2–2.5), in three forms:
//   recurrent — token by token, the semantic definition; run in float64 it is the oracle;
//   chunked   — chunk-parallel WY/UT form for training and prefill (differentiable);
//   step      — one token on a cached state, for decode.
// Per value head j (query/key head j / (HV/H)), with α_t = exp(g_t):
//   S_t = α_t (I − β_t k_t k_tᵀ) S_{t−1} + β_t k_t v_tᵀ,   o_t = S_tᵀ (scale · q_t).
// Inputs are taken as given: q and k already L2-normalised, g the log decay (≤ 0),
// β the write strength.
#pragma once
#include <torch/torch.h>

#include "hyla/ops/recurrence.h"

namespace hyla::ops {

// q, k: [B, T, H, dk]; v: [B, T, HV, dv]; g, beta: [B, T, HV]; HV a multiple of H.
RecurrenceResult gated_delta_recurrent(const torch::Tensor& q, const torch::Tensor& k,
                                       const torch::Tensor& v, const torch::Tensor& g,
                                       const torch::Tensor& beta,
                                       const RecurrenceOptions& opt = {});
RecurrenceResult gated_delta_chunked(const torch::Tensor& q, const torch::Tensor& k,
                                     const torch::Tensor& v, const torch::Tensor& g,
                                     const torch::Tensor& beta,
                                     const RecurrenceOptions& opt = {});
// One token: q, k [B, H, dk]; v [B, HV, dv]; g, beta [B, HV]; state [B, HV, dk, dv]
// (undefined = zeros). Returns o [B, HV, dv] and the new state. opt.cu_seqlens and
// opt.initial_state are not used.
RecurrenceResult gated_delta_step(const torch::Tensor& q, const torch::Tensor& k,
                                  const torch::Tensor& v, const torch::Tensor& g,
                                  const torch::Tensor& beta, const torch::Tensor& state,
                                  double scale = -1);

}  // namespace hyla::ops
