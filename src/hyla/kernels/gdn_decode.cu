// Fused Gated DeltaNet decode / verify step (gdn.md steps 1–7, before W_o) in one launch.
//
// One thread block per (sequence b, query/key head h). It computes the short conv (+SiLU)
// of head h's q and k channels for the T new tokens, their L2 norms, then, for each of
// the G = HV/H value heads that share them, the v conv, the gates, the delta-rule update
// of that head's float32 state (held in registers for all T tokens: one read and one
// write of S per call) and the gated output RMSNorm. Every conv-tail channel and state
// element is read and then written by the same thread, so in-place updates (the static
// cache of CUDA-graph decoding) are race-free; nothing is allocated, nothing synchronises
// with the host, so the launch is graph-capturable.
//
// Threads: CT = dv/4 column threads (4 adjacent columns of S each, 16-byte accesses) × R
// row groups (dk/R rows each). The read-out uses, per token (gdn.md steps 5–6),
//   S' = αS,  u = β(v − S'ᵀk),  S_new = S' + k uᵀ,
//   o = S_newᵀ q̂ = α Sᵀq̂ + (q̂·k) u          (q̂ = scale · q / ‖q‖),
// so Sᵀk and Sᵀq̂ come from one pass over the old state (two reductions over rows).
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "hyla/kernels/gdn_decode_launch.h"

namespace hyla::kernels {

namespace {

constexpr int kMaxConv = 8;  // conv windows up to 8 (fla uses 4)

__device__ __forceinline__ float load(const float* p, int64_t i) { return p[i]; }
__device__ __forceinline__ float load(const __nv_bfloat16* p, int64_t i) { return __bfloat162float(p[i]); }
__device__ __forceinline__ void store(float* p, int64_t i, float x) { p[i] = x; }
__device__ __forceinline__ void store(__nv_bfloat16* p, int64_t i, float x) { p[i] = __float2bfloat16(x); }

__device__ __forceinline__ float silu(float x) { return x / (1.f + __expf(-x)); }
// PyTorch's softplus (threshold 20): x for x > 20, else log1p(exp(x)).
__device__ __forceinline__ float softplus(float x) { return x > 20.f ? x : log1pf(expf(x)); }

// Causal conv (+ SiLU) of one channel `ch` over the T new tokens (gdn.md step 1): the
// window starts with the cached tail (the last W−1 inputs); the new tail is written back.
template <typename T>
__device__ void conv_channel(const GdnDecodeParams& p, const T* x, int64_t sb, int64_t st,
                             const T* w, const T* bias, const T* tail_in, T* tail_out, T* tail_steps,
                             int C, int b, int ch, float* dst, int dst_stride) {
  int W = p.W;
  if (W == 0) {
    for (int t = 0; t < p.T; ++t) dst[t * dst_stride] = silu(load(x, b * sb + t * st + ch));
    return;
  }
  float win[kMaxConv], wt[kMaxConv];
  int64_t tail_at = (int64_t(b) * C + ch) * (W - 1);
#pragma unroll
  for (int i = 0; i < kMaxConv; ++i) {
    wt[i] = i < W ? load(w, int64_t(ch) * W + i) : 0.f;
    win[i] = i < W - 1 ? load(tail_in, tail_at + i) : 0.f;
  }
  float b0 = bias ? load(bias, ch) : 0.f, w_last = 0.f;
#pragma unroll
  for (int i = 0; i < kMaxConv; ++i)
    if (i == W - 1) w_last = wt[i];
  for (int t = 0; t < p.T; ++t) {
    float xt = load(x, b * sb + t * st + ch);
    float y = b0 + w_last * xt;
#pragma unroll
    for (int i = 0; i < kMaxConv - 1; ++i)
      if (i < W - 1) y += wt[i] * win[i];
    dst[t * dst_stride] = silu(y);
    // Shift the window: drop the oldest input, append x_t (compile-time indices only,
    // so the window stays in registers).
#pragma unroll
    for (int i = 0; i < kMaxConv - 1; ++i) {
      if (i < W - 2) win[i] = win[i + 1];
      else if (i == W - 2) win[i] = xt;
    }
    if (tail_steps) {
      int64_t at = ((int64_t(b) * p.T + t) * C + ch) * (W - 1);
#pragma unroll
      for (int i = 0; i < kMaxConv - 1; ++i)
        if (i < W - 1) store(tail_steps, at + i, win[i]);
    }
  }
#pragma unroll
  for (int i = 0; i < kMaxConv - 1; ++i)
    if (i < W - 1) store(tail_out, tail_at + i, win[i]);
}

__device__ __forceinline__ float warp_sum(float x) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
  return x;
}

template <typename T, int DK, int DV, int R>
__global__ void __launch_bounds__(R * DV / 4) gdn_decode_kernel(const GdnDecodeParams p) {
  constexpr int CT = DV / 4, NT = R * CT, ROWS = DK / R;
  static_assert(DK % R == 0 && DV % 4 == 0, "tile");
  const int h = blockIdx.x, b = blockIdx.y, tid = threadIdx.x, nT = p.T;
  const int G = p.HV / p.H, Ck = p.H * DK, Cv = p.HV * DV;
  const int col = tid % CT, rg = tid / CT;

  extern __shared__ float smem[];
  float* q_s = smem;                  // [T][DK]: q̂ (normalised, scaled)
  float* k_s = q_s + nT * DK;         // [T][DK]
  float* v_s = k_s + nT * DK;         // [T][DV]
  float* red_k = v_s + nT * DV;       // [R][DV] partial Sᵀk
  float* red_q = red_k + R * DV;      // [R][DV] partial Sᵀq̂
  float* u_s = red_q + R * DV;        // [DV]
  float* o_s = u_s + DV;              // [DV]
  float* tok = o_s + DV;              // per token: α, β, q̂·k, ‖q‖⁻¹, ‖k‖⁻¹, q·k
  float* alpha_s = tok, *beta_s = tok + nT, *qk_s = tok + 2 * nT;
  float* inv_q = tok + 3 * nT, *inv_k = tok + 4 * nT, *dot_s = tok + 5 * nT;
  float* rms_s = tok + 6 * nT;        // [1]

  const T* wq = static_cast<const T*>(p.wq);
  const T* wk = static_cast<const T*>(p.wk);
  // Step 1 for q and k of head h, all tokens.
  for (int c = tid; c < DK; c += NT) {
    int ch = h * DK + c;
    conv_channel<T>(p, static_cast<const T*>(p.q), p.q_sb, p.q_st, wq, static_cast<const T*>(p.bq),
                    static_cast<const T*>(p.tq_in), static_cast<T*>(p.tq_out), static_cast<T*>(p.tq_steps),
                    Ck, b, ch, q_s + c, DK);
    conv_channel<T>(p, static_cast<const T*>(p.k), p.k_sb, p.k_st, wk, static_cast<const T*>(p.bk),
                    static_cast<const T*>(p.tk_in), static_cast<T*>(p.tk_out), static_cast<T*>(p.tk_steps),
                    Ck, b, ch, k_s + c, DK);
  }
  __syncthreads();
  // Step 2: ‖q‖², ‖k‖², q·k per token, one warp per (token, quantity).
  const int warp = tid / 32, lane = tid % 32, nwarps = (NT + 31) / 32;
  for (int task = warp; task < 3 * nT; task += nwarps) {
    int t = task / 3, which = task % 3;
    const float* x = which == 1 ? k_s + t * DK : q_s + t * DK;
    const float* y = which == 0 ? q_s + t * DK : k_s + t * DK;
    float s = 0;
    for (int i = lane; i < DK; i += 32) s += x[i] * y[i];
    s = warp_sum(s);
    if (lane == 0) {
      if (which == 0) inv_q[t] = rsqrtf(s + p.l2_eps);
      else if (which == 1) inv_k[t] = rsqrtf(s + p.l2_eps);
      else dot_s[t] = s;
    }
  }
  __syncthreads();
  for (int i = tid; i < nT * DK; i += NT) {
    int t = i / DK;
    q_s[i] *= inv_q[t] * p.scale;
    k_s[i] *= inv_k[t];
  }
  if (tid < nT) qk_s[tid] = dot_s[tid] * inv_q[tid] * inv_k[tid] * p.scale;

  const T* wv = static_cast<const T*>(p.wv);
  const T* a_in = static_cast<const T*>(p.a);
  const T* b_in = static_cast<const T*>(p.beta_logit);
  const T* gate = static_cast<const T*>(p.gate);
  const T* norm_w = static_cast<const T*>(p.norm_w);
  T* out = static_cast<T*>(p.out);
  for (int g = 0; g < G; ++g) {
    const int hv = h * G + g;
    __syncthreads();  // the previous head's readers of v_s / α / β are done
    for (int c = tid; c < DV; c += NT)
      conv_channel<T>(p, static_cast<const T*>(p.v), p.v_sb, p.v_st, wv, static_cast<const T*>(p.bv),
                      static_cast<const T*>(p.tv_in), static_cast<T*>(p.tv_out), static_cast<T*>(p.tv_steps),
                      Cv, b, hv * DV + c, v_s + c, DV);
    if (tid < nT) {
      // Steps 3–4: g = −exp(A_log)·softplus(a + dt_bias), α = exp(g); β = σ(b) (·2).
      int t = tid;
      float A = expf(load(static_cast<const T*>(p.A_log), hv));
      float a = load(a_in, b * p.a_sb + t * p.a_st + hv) + load(static_cast<const T*>(p.dt_bias), hv);
      alpha_s[t] = expf(-A * softplus(a));
      float bl = load(b_in, b * p.b_sb + t * p.b_st + hv);
      beta_s[t] = p.beta_mul / (1.f + expf(-bl));
    }
    // This thread's tile of S: rows rg·ROWS …, columns 4·col … 4·col+3.
    const int64_t head_at = (int64_t(b) * p.HV + hv) * DK * DV;
    float4 s[ROWS];
#pragma unroll
    for (int i = 0; i < ROWS; ++i)
      s[i] = *reinterpret_cast<const float4*>(p.S_in + head_at + int64_t(rg * ROWS + i) * DV + 4 * col);
    __syncthreads();
    for (int t = 0; t < nT; ++t) {
      const float* kt = k_s + t * DK + rg * ROWS;
      const float* qt = q_s + t * DK + rg * ROWS;
      float4 pk = make_float4(0, 0, 0, 0), pq = pk;
#pragma unroll
      for (int i = 0; i < ROWS; ++i) {
        float kv = kt[i], qv = qt[i];
        pk.x += kv * s[i].x; pk.y += kv * s[i].y; pk.z += kv * s[i].z; pk.w += kv * s[i].w;
        pq.x += qv * s[i].x; pq.y += qv * s[i].y; pq.z += qv * s[i].z; pq.w += qv * s[i].w;
      }
      *reinterpret_cast<float4*>(red_k + rg * DV + 4 * col) = pk;
      *reinterpret_cast<float4*>(red_q + rg * DV + 4 * col) = pq;
      __syncthreads();
      const float alpha = alpha_s[t];
      for (int j = tid; j < DV; j += NT) {
        float ks = 0, qs = 0;
#pragma unroll
        for (int r = 0; r < R; ++r) { ks += red_k[r * DV + j]; qs += red_q[r * DV + j]; }
        float u = beta_s[t] * (v_s[t * DV + j] - alpha * ks);
        u_s[j] = u;
        o_s[j] = alpha * qs + qk_s[t] * u;
      }
      __syncthreads();
      // S ← αS + k uᵀ on the register tile.
      float4 u4 = *reinterpret_cast<const float4*>(u_s + 4 * col);
#pragma unroll
      for (int i = 0; i < ROWS; ++i) {
        float kv = kt[i];
        s[i].x = alpha * s[i].x + kv * u4.x;
        s[i].y = alpha * s[i].y + kv * u4.y;
        s[i].z = alpha * s[i].z + kv * u4.z;
        s[i].w = alpha * s[i].w + kv * u4.w;
      }
      if (p.S_steps) {
        float* dst = p.S_steps + ((int64_t(b) * nT + t) * p.HV + hv) * DK * DV;
#pragma unroll
        for (int i = 0; i < ROWS; ++i)
          *reinterpret_cast<float4*>(dst + int64_t(rg * ROWS + i) * DV + 4 * col) = s[i];
      }
      // Step 7: RMSNorm over dv, times the weight and SiLU(gate).
      if (warp == 0) {
        float ss = 0;
        for (int j = lane; j < DV; j += 32) ss += o_s[j] * o_s[j];
        ss = warp_sum(ss);
        if (lane == 0) rms_s[0] = rsqrtf(ss / DV + p.norm_eps);
      }
      __syncthreads();
      const float inv = rms_s[0];
      for (int j = tid; j < DV; j += NT) {
        float y = o_s[j] * inv * load(norm_w, j);
        if (gate) y *= silu(load(gate, b * p.gate_sb + t * p.gate_st + hv * DV + j));
        store(out, ((int64_t(b) * nT + t) * p.HV + hv) * DV + j, y);
      }
    }
#pragma unroll
    for (int i = 0; i < ROWS; ++i)
      *reinterpret_cast<float4*>(p.S_out + head_at + int64_t(rg * ROWS + i) * DV + 4 * col) = s[i];
  }
}

template <typename T, int DK, int DV>
cudaError_t launch_typed(const GdnDecodeParams& p, cudaStream_t stream) {
  // R row groups: 256 threads for dv 64 and 128, 160 for dv 80 (dk/R rows each).
  constexpr int R = DV == 64 ? 16 : 8;
  constexpr int NT = R * DV / 4;
  size_t floats = size_t(p.T) * (2 * DK + DV) + 2 * R * DV + 2 * DV + 6 * p.T + 1;
  gdn_decode_kernel<T, DK, DV, R><<<dim3(p.H, p.B), NT, floats * sizeof(float), stream>>>(p);
  return cudaGetLastError();
}

template <typename T>
cudaError_t launch_dims(const GdnDecodeParams& p, cudaStream_t s) {
#define HYLA_GDN_DIMS(K, V) \
  if (p.dk == K && p.dv == V) return launch_typed<T, K, V>(p, s);
  HYLA_GDN_DIMS(64, 64) HYLA_GDN_DIMS(64, 80) HYLA_GDN_DIMS(64, 128)
  HYLA_GDN_DIMS(80, 64) HYLA_GDN_DIMS(80, 80) HYLA_GDN_DIMS(80, 128)
  HYLA_GDN_DIMS(128, 64) HYLA_GDN_DIMS(128, 80) HYLA_GDN_DIMS(128, 128)
#undef HYLA_GDN_DIMS
  return cudaErrorInvalidValue;
}

}  // namespace

bool gdn_decode_dims_supported(int dk, int dv) {
  auto ok = [](int d) { return d == 64 || d == 80 || d == 128; };
  return ok(dk) && ok(dv);
}

const char* launch_gdn_decode(const GdnDecodeParams& p, void* stream) {
  if (!gdn_decode_dims_supported(p.dk, p.dv)) return "head dims not built (dk, dv in {64, 80, 128})";
  if (p.T < 1 || p.T > kGdnDecodeMaxTokens) return "token count out of range (1..16)";
  if (p.W > kMaxConv) return "conv window larger than 8";
  if (p.B == 0) return nullptr;
  auto s = static_cast<cudaStream_t>(stream);
  cudaError_t e = p.bf16 ? launch_dims<__nv_bfloat16>(p, s) : launch_dims<float>(p, s);
  return e == cudaSuccess ? nullptr : cudaGetErrorString(e);
}

}  // namespace hyla::kernels
