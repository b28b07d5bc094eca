// A whole Gated DeltaNet decode step (gdn.md steps 1–7, before W_o) for a batch of
// sequences, from the projections of the new token(s) to the gated, normed read-out:
//   short conv (+ cached tail) and SiLU of q, k, v; L2 norm of q and k; the gates
//   g = −exp(A_log)·softplus(a + dt_bias), β = σ(b); the delta-rule update of the float32
//   state; o = Sᵀ q̂; RMSNorm(o) ⊙ SiLU(gate).
// On CUDA (a HYLA_CUDA build) it is one fused kernel launch (gdn_decode.cu), graph-
// capturable, updating the states in place when asked; elsewhere `gdn_decode_reference`
// composes the LibTorch ops (ops::short_conv, l2_normalize, gated_delta_step,
// rms_norm_gated) exactly as the GDN mixer does, and is the kernel's reference.
//
// T > 1 tokens (up to 16) make a verify step for speculative decoding: the tokens run in
// order, and with `keep_steps` the state and conv tails after every token come back, so a
// caller can roll back to any accepted prefix (docs/kernels.md).
#pragma once
#include <torch/torch.h>

namespace hyla::kernels {

struct GdnDecodeInputs {
  // Projections of the new tokens, [B, T, channels] (row views of a wider tensor are
  // fine; the channel dim must be contiguous): q, k [B, T, H·dk], v and gate
  // [B, T, HV·dv], a and b [B, T, HV]. gate undefined: plain RMSNorm, no SiLU gate.
  torch::Tensor q, k, v, a, b, gate;
  // Depthwise conv weights [C, W] or [C, 1, W] and biases [C] (undefined: none); all
  // three weights undefined: no short conv (SiLU only).
  torch::Tensor conv_q_w, conv_k_w, conv_v_w, conv_q_b, conv_k_b, conv_v_b;
  torch::Tensor conv_q, conv_k, conv_v;  // cached tails [B, C, W−1]
  torch::Tensor A_log, dt_bias;          // [HV]
  torch::Tensor norm_weight;             // [dv]
  torch::Tensor S;                       // [B, HV, dk, dv] float32
  int64_t H = 0, HV = 0, dk = 0, dv = 0;
  double scale = -1;  // < 0: dk^(-1/2)
  double norm_eps = 1e-5;
  bool allow_neg_eigval = false;  // β = 2σ(b)
  bool in_place = false;          // write the new S and tails into the given tensors
  bool keep_steps = false;        // also return the state and tails after every token
  // Optional preallocated outputs of the kernel (contiguous, the result's shape and
  // dtype): o, the new S when not in place, and S_steps.
  torch::Tensor out, S_out, S_steps_out;
};

struct GdnDecodeResult {
  torch::Tensor o;                       // [B, T, HV, dv] in q's dtype
  torch::Tensor S, conv_q, conv_k, conv_v;  // after the last token (the inputs if in_place)
  // keep_steps: [B, T, HV, dk, dv] and [B, T, C, W−1]: the state and tails after token t.
  torch::Tensor S_steps, conv_q_steps, conv_k_steps, conv_v_steps;
};

// Whether the fused kernel can take these inputs: a CUDA build, CUDA tensors, bf16 or
// float32 activations with parameters of the same dtype, head dims in {64, 80, 128},
// T ≤ 16, a float32 state, and the fused path not turned off (HYLA_GDN_DECODE=reference).
bool gdn_decode_kernel_supports(const GdnDecodeInputs& in);

// The fused kernel; fails (hyla::Error) where gdn_decode_kernel_supports is false.
GdnDecodeResult gdn_decode_kernel(const GdnDecodeInputs& in);

// The LibTorch composition, any device and dtype (never in place).
GdnDecodeResult gdn_decode_reference(const GdnDecodeInputs& in);

}  // namespace hyla::kernels
