// The raw interface of the fused GDN decode kernel (gdn_decode.cu): plain pointers and
// strides, no LibTorch, so nvcc compiles the kernel without the framework's headers.
// gdn_decode.h is the checked, tensor-facing entry; only it calls this.
#pragma once
#include <cstdint>

namespace hyla::kernels {

// One fused call covers T tokens (T = 1: a decode step; T > 1: a verify step) of B
// sequences, gdn.md steps 1–7 up to (not including) W_o.
struct GdnDecodeParams {
  int B = 0, T = 1, H = 0, HV = 0, dk = 0, dv = 0;
  int W = 0;         // conv window; 0: no short conv (SiLU only)
  bool bf16 = false; // activations, conv tails and parameters in bf16 (else float32)

  // Projections of the new tokens, pre-conv: element (b, t, c) at p[b·sb + t·st + c].
  const void *q = nullptr, *k = nullptr, *v = nullptr, *a = nullptr, *beta_logit = nullptr,
             *gate = nullptr;  // gate == nullptr: plain RMSNorm, no SiLU gate
  int64_t q_sb = 0, q_st = 0, k_sb = 0, k_st = 0, v_sb = 0, v_st = 0, a_sb = 0, a_st = 0,
          b_sb = 0, b_st = 0, gate_sb = 0, gate_st = 0;

  // Conv weights [C, W] contiguous, biases [C] (nullptr: none).
  const void *wq = nullptr, *wk = nullptr, *wv = nullptr, *bq = nullptr, *bk = nullptr, *bv = nullptr;
  // Conv tails [B, C, W−1] contiguous: read from *_in, written to *_out (may alias).
  const void *tq_in = nullptr, *tk_in = nullptr, *tv_in = nullptr;
  void *tq_out = nullptr, *tk_out = nullptr, *tv_out = nullptr;
  // Per-token tails for rollback [B, T, C, W−1] (nullptr: not kept).
  void *tq_steps = nullptr, *tk_steps = nullptr, *tv_steps = nullptr;

  const void *A_log = nullptr, *dt_bias = nullptr, *norm_w = nullptr;  // [HV], [HV], [dv]
  const float* S_in = nullptr;  // [B, HV, dk, dv]
  float* S_out = nullptr;       // may alias S_in
  float* S_steps = nullptr;     // [B, T, HV, dk, dv] state after each token (nullptr: not kept)
  void* out = nullptr;          // [B, T, HV, dv]: RMSNorm(o) ⊙ SiLU(gate)

  float scale = 0, norm_eps = 1e-5f, l2_eps = 1e-6f, beta_mul = 1;
};

// Largest T one call takes (shared memory holds every token's q, k, v).
constexpr int kGdnDecodeMaxTokens = 16;

// Whether the kernel is built for these head dims.
bool gdn_decode_dims_supported(int dk, int dv);

// Launches on `stream` (a cudaStream_t). Returns nullptr, or the CUDA error's text.
const char* launch_gdn_decode(const GdnDecodeParams& p, void* stream);

}  // namespace hyla::kernels
