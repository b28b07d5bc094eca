#include "hyla/model/mixers/gdn.h"

#include <cmath>

#include "hyla/kernels/gdn_decode.h"
#include "hyla/ops/gated_delta.h"
#include "hyla/ops/norms.h"
#include "hyla/ops/short_conv.h"
#include "hyla/util/error.h"

namespace hyla::model {

GatedDeltaNetImpl::GatedDeltaNetImpl(const MixerConfig& c) : c_(c) {
  validate_mixer_config(c_, "gdn");
  int64_t d = c.hidden, key_dim = c.n_heads * c.head_k_dim, HV = c.value_heads();
  int64_t value_dim = HV * c.v_dim();
  q_proj = register_module("q_proj", make_projection(d, key_dim, false, c.init_std));
  k_proj = register_module("k_proj", make_projection(d, key_dim, false, c.init_std));
  v_proj = register_module("v_proj", make_projection(d, value_dim, false, c.init_std));
  a_proj = register_module("a_proj", make_projection(d, HV, false, c.init_std));
  b_proj = register_module("b_proj", make_projection(d, HV, c.beta_bias, c.init_std));
  // fla's init (gdn.md "Parameters"): A ~ U(0, 16), A_log = log A; dt ~ logU(1e-3, 1e-1)
  // floored at 1e-4, dt_bias = softplus⁻¹(dt) = dt + log(−expm1(−dt)).
  auto A = torch::empty({HV}).uniform_(0, 16);
  A_log = register_parameter("A_log", A.log());
  auto dt = torch::exp(torch::rand({HV}) * (std::log(0.1) - std::log(1e-3)) + std::log(1e-3)).clamp_min(1e-4);
  dt_bias = register_parameter("dt_bias", dt + torch::log(-torch::expm1(-dt)));
  if (c.use_short_conv) {
    q_conv1d = register_module("q_conv1d", ShortConv(key_dim, c.conv_size, c.conv_bias));
    k_conv1d = register_module("k_conv1d", ShortConv(key_dim, c.conv_size, c.conv_bias));
    v_conv1d = register_module("v_conv1d", ShortConv(value_dim, c.conv_size, c.conv_bias));
    // fla's model init (_init_weights) draws Conv1d weights like Linear ones: N(0, std).
    torch::NoGradGuard ng;
    for (auto* cv : {&q_conv1d, &k_conv1d, &v_conv1d}) (*cv)->weight.normal_(0.0, c.init_std);
  }
  if (c.use_gate) g_proj = register_module("g_proj", make_projection(d, value_dim, false, c.init_std));
  o_norm = register_module("o_norm", NormWeight(c.v_dim()));
  o_proj = register_module("o_proj", make_projection(value_dim, d, false, c.init_std));
  if (c.use_rope) rotary_ = Rotary(c.rope, c.head_k_dim);
}

int64_t GatedDeltaNetImpl::state_bytes(int64_t elem_size) const {
  int64_t HV = c_.value_heads(), channels = 2 * c_.n_heads * c_.head_k_dim + HV * c_.v_dim();
  int64_t conv = c_.use_short_conv ? (c_.conv_size - 1) * channels * elem_size : 0;
  return HV * c_.head_k_dim * c_.v_dim() * 4 + conv;  // S is float32 (gdn.md "Decode")
}

torch::Tensor GatedDeltaNetImpl::forward(const torch::Tensor& x, const MixerContext& ctx) {
  check_mixer_input(x, ctx, c_.hidden, c_.name);
  if (auto y = fused_decode(x, ctx); y.defined()) return y;
  auto o = recurrent_output(x, ctx);
  int64_t B = x.size(0), T = x.size(1), HV = c_.value_heads(), dv = c_.v_dim();
  // Step 7: per-head RMSNorm gated by SiLU(W_g x) (fla's FusedRMSNormGated), then W_o.
  o = c_.use_gate ? ops::rms_norm_gated(o, g_proj(x).view({B, T, HV, dv}), o_norm->weight, c_.norm_eps, "silu")
                  : ops::rms_norm(o, o_norm->weight, c_.norm_eps);
  return o_proj(o.reshape({B, T, HV * dv}).to(x.dtype()));
}

torch::Tensor GatedDeltaNetImpl::fused_decode(const torch::Tensor& x, const MixerContext& ctx) {
  if (!x.is_cuda() || !ctx.cache || x.size(1) != 1 || ctx.cu_seqlens.defined() || c_.use_rope ||
      torch::GradMode::is_enabled())
    return {};
  kernels::GdnDecodeInputs in;
  in.q = x;  // stands in for the projections (same dtype, device, rank) in the check below
  if (c_.use_short_conv) {
    in.conv_q_w = q_conv1d->weight, in.conv_k_w = k_conv1d->weight, in.conv_v_w = v_conv1d->weight;
    in.conv_q_b = q_conv1d->bias, in.conv_k_b = k_conv1d->bias, in.conv_v_b = v_conv1d->bias;
    in.conv_q = cached_state(ctx, "conv_q"), in.conv_k = cached_state(ctx, "conv_k");
    in.conv_v = cached_state(ctx, "conv_v");
  }
  in.A_log = A_log, in.dt_bias = dt_bias, in.norm_weight = o_norm->weight;
  in.S = cached_state(ctx, "S");
  in.H = c_.n_heads, in.HV = c_.value_heads(), in.dk = c_.head_k_dim, in.dv = c_.v_dim();
  in.norm_eps = c_.norm_eps;
  in.allow_neg_eigval = c_.allow_neg_eigval;
  // CUDA-graph decoding replays into the same buffers: update them in place there.
  in.in_place = ctx.static_cache;
  if (!kernels::gdn_decode_kernel_supports(in)) return {};
  in.q = q_proj(x), in.k = k_proj(x), in.v = v_proj(x), in.a = a_proj(x), in.b = b_proj(x);
  if (c_.use_gate) in.gate = g_proj(x);
  auto r = kernels::gdn_decode_kernel(in);
  if (!in.in_place) {
    store_state(ctx, "S", r.S);
    if (c_.use_short_conv) {
      store_state(ctx, "conv_q", r.conv_q);
      store_state(ctx, "conv_k", r.conv_k);
      store_state(ctx, "conv_v", r.conv_v);
    }
  }
  ctx.cache->length += 1;
  int64_t B = x.size(0);
  return o_proj(r.o.reshape({B, 1, c_.value_heads() * c_.v_dim()}));
}

torch::Tensor GatedDeltaNetImpl::recurrent_output(const torch::Tensor& x, const MixerContext& ctx, double scale) {
  int64_t B = x.size(0), T = x.size(1), H = c_.n_heads, HV = c_.value_heads();
  int64_t dk = c_.head_k_dim, dv = c_.v_dim();
  auto* cache = ctx.cache;
  // gdn.md step 1: q, k, v = SiLU(causal conv(W x)), the conv continuing from the cached tail.
  auto project = [&](torch::nn::Linear& proj, ShortConv& conv, const char* key) {
    auto y = proj(x);
    if (!c_.use_short_conv) return torch::silu(y);  // fla keeps the SiLU without a conv
    auto r = ops::short_conv(y, conv->weight, conv->bias, cached_state(ctx, key), ctx.cu_seqlens, true);
    // Contiguous, so the fused decode kernel can update it in place (a static cache keeps
    // this first tensor as its buffer).
    store_state(ctx, key, r.tail.to(x.dtype()).contiguous());
    return r.y;
  };
  auto q = project(q_proj, q_conv1d, "conv_q").view({B, T, H, dk});
  auto k = project(k_proj, k_conv1d, "conv_k").view({B, T, H, dk});
  auto v = project(v_proj, v_conv1d, "conv_v").view({B, T, HV, dv});
  if (c_.use_rope) {  // optional (HyPE with GDN, as HALO's GDN variant: RoPE before L2 norm)
    auto [cos, sin] = rotary_.cos_sin(mixer_positions(x, ctx));
    q = apply_rotary(q, cos, sin);
    k = apply_rotary(k, cos, sin);
  }
  // Step 2: L2-normalise q, k per head (eps inside the root); the scale dk^(-1/2) is the op's.
  q = ops::l2_normalize(q, 1e-6);
  k = ops::l2_normalize(k, 1e-6);
  // Steps 3–4, in float32 (float64 stays): g = −exp(A_log)·softplus(W_a x + dt_bias),
  // β = σ(W_b x) (or 2σ).
  auto gt = ops::compute_dtype(x);
  auto g = -A_log.to(gt).exp() * torch::softplus(a_proj(x).to(gt) + dt_bias.to(gt));
  auto beta = torch::sigmoid(b_proj(x).to(gt));
  if (c_.allow_neg_eigval) beta = beta * 2;
  // Step 5–6: the recurrence; a single decoded token takes the step form.
  auto S0 = cached_state(ctx, "S");
  ops::RecurrenceResult r;
  if (cache && T == 1 && !ctx.cu_seqlens.defined()) {
    r = ops::gated_delta_step(q.select(1, 0), k.select(1, 0), v.select(1, 0), g.select(1, 0),
                              beta.select(1, 0), S0, scale);
    r.o = r.o.unsqueeze(1);
  } else {
    ops::RecurrenceOptions opt;
    opt.initial_state = S0;
    opt.cu_seqlens = ctx.cu_seqlens;
    opt.chunk_size = c_.chunk_size;
    opt.scale = scale;
    r = ops::gated_delta_chunked(q, k, v, g, beta, opt);
  }
  if (cache) {
    store_state(ctx, "S", r.state);
    cache->length += T;
  }
  return r.o;
}

}  // namespace hyla::model
