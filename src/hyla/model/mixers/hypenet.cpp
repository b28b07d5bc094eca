#include "hyla/model/mixers/hypenet.h"

#include <cmath>

#include "hyla/ops/gated_linear.h"
#include "hyla/ops/norms.h"
#include "hyla/util/error.h"

namespace hyla::model {

std::vector<double> alibi_slopes(int64_t n) {
  auto pow2 = [](int64_t m) {
    double start = std::pow(2.0, -8.0 / double(m));
    std::vector<double> s;
    for (int64_t i = 0; i < m; ++i) s.push_back(std::pow(start, double(i + 1)));
    return s;
  };
  int64_t p = 1;
  while (p * 2 <= n) p *= 2;
  auto s = pow2(p);
  if (p == n) return s;
  auto extra = alibi_slopes(2 * p);
  for (int64_t i = 0; int64_t(s.size()) < n; i += 2) s.push_back(extra[i]);
  return s;
}

torch::Tensor expand_kv_rows(const torch::Tensor& w, int64_t n_kv, int64_t n_heads) {
  HYLA_CHECK(n_kv > 0 && n_heads % n_kv == 0 && w.dim() >= 1 && w.size(0) % n_kv == 0,
             "expand_kv_rows: {} key/value heads must divide {} heads and the {} rows", n_kv,
             n_heads, w.dim() >= 1 ? w.size(0) : 0);
  auto s = w.sizes().vec();
  std::vector<int64_t> blocks{n_kv, w.size(0) / n_kv};
  blocks.insert(blocks.end(), s.begin() + 1, s.end());
  auto out = w.reshape(blocks).repeat_interleave(n_heads / n_kv, 0);
  s[0] = w.size(0) / n_kv * n_heads;
  return out.reshape(s);
}

LightningAttentionImpl::LightningAttentionImpl(const MixerConfig& c) : c_(c) {
  validate_mixer_config(c_, "hypenet");
  HYLA_CHECK(c.v_dim() == c.head_k_dim, "{} (hypenet): key and value head dims must match, got {} and {}",
             c.name, c.head_k_dim, c.v_dim());
  int64_t d = c.hidden, H = c.n_heads, Dh = c.head_k_dim, kv = c.kv_heads();
  q_proj = register_module("q_proj", make_projection(d, H * Dh, c.attention_bias, c.init_std));
  k_proj = register_module("k_proj", make_projection(d, kv * Dh, c.attention_bias, c.init_std));
  v_proj = register_module("v_proj", make_projection(d, kv * Dh, c.attention_bias, c.init_std));
  o_proj = register_module("o_proj", make_projection(H * Dh, d, c.attention_bias, c.init_std));
  if (c.output_gate) {
    // methods.md §6.1: W_z is new, PyTorch's default Linear init (Kaiming-uniform).
    z_proj = register_module("z_proj", torch::nn::Linear(torch::nn::LinearOptions(d, H * Dh).bias(c.attention_bias)));
  }
  if (c.qk_norm) {
    q_norm = register_module("q_norm", NormWeight(Dh));
    k_norm = register_module("k_norm", NormWeight(Dh));
  }
  if (c.output_norm) o_norm = register_module("o_norm", NormWeight(H * Dh));
  if (c.use_rope) rotary_ = Rotary(c.rope, Dh);
  auto slopes = alibi_slopes(H);
  log_decay_ = -torch::tensor(slopes, torch::kFloat64).to(torch::kFloat32);
}

int64_t LightningAttentionImpl::state_bytes(int64_t) const {
  return c_.n_heads * c_.head_k_dim * c_.head_k_dim * 4;
}

torch::Tensor LightningAttentionImpl::forward(const torch::Tensor& x, const MixerContext& ctx) {
  check_mixer_input(x, ctx, c_.hidden, c_.name);
  int64_t H = c_.n_heads, Dh = c_.head_k_dim;
  auto o = recurrent_output(x, ctx).reshape({x.size(0), x.size(1), H * Dh}).to(x.dtype());
  if (c_.output_norm) o = ops::rms_norm(o, o_norm->weight, c_.rms_eps);
  if (c_.output_gate) o = o * torch::sigmoid(z_proj(x));
  return o_proj(o);
}

torch::Tensor LightningAttentionImpl::recurrent_output(const torch::Tensor& x, const MixerContext& ctx) {
  int64_t B = x.size(0), T = x.size(1), H = c_.n_heads, Dh = c_.head_k_dim, kv = c_.kv_heads();
  auto q = q_proj(x).view({B, T, H, Dh});
  auto k = k_proj(x).view({B, T, kv, Dh});
  auto v = v_proj(x).view({B, T, kv, Dh});
  if (c_.qk_norm) {
    q = ops::rms_norm(q, q_norm->weight, c_.rms_eps);
    k = ops::rms_norm(k, k_norm->weight, c_.rms_eps);
  }
  if (c_.use_rope) {  // HyPE: RoPE lives in the RNN layers
    auto [cos, sin] = rotary_.cos_sin(mixer_positions(x, ctx));
    q = apply_rotary(q, cos, sin);
    k = apply_rotary(k, cos, sin);
  }
  if (kv < H) {  // GQA → MHA: kv head j serves query heads j·G .. j·G+G−1
    k = k.repeat_interleave(H / kv, 2);
    v = v.repeat_interleave(H / kv, 2);
  }
  // HALO casts q, k, v to float32 for the kernel (float64 stays, for the oracle tests).
  auto ct = x.scalar_type() == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
  q = q.to(ct), k = k.to(ct), v = v.to(ct);
  auto S0 = cached_state(ctx, "S");
  // Kept on the compute device after the first call: a host-to-device copy per step would
  // also break CUDA-graph capture.
  if (!decay_on_device_.defined() || decay_on_device_.device() != q.device() ||
      decay_on_device_.scalar_type() != q.scalar_type())
    decay_on_device_ = log_decay_.to(q.device(), q.scalar_type());
  auto decay = decay_on_device_;
  ops::RecurrenceResult r;
  if (ctx.cache && T == 1 && !ctx.cu_seqlens.defined()) {
    r = ops::gated_linear_step(q.select(1, 0), k.select(1, 0), v.select(1, 0), decay.expand({B, H}), S0);
    r.o = r.o.unsqueeze(1);
  } else {
    ops::RecurrenceOptions opt;
    opt.initial_state = S0;
    opt.cu_seqlens = ctx.cu_seqlens;
    opt.chunk_size = c_.chunk_size;
    r = ops::gated_linear_chunked(q, k, v, decay.expand({B, T, H}), opt);
  }
  if (ctx.cache) {
    store_state(ctx, "S", r.state);
    ctx.cache->length += T;
  }
  return r.o;
}

}  // namespace hyla::model
