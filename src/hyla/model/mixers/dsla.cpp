#include "hyla/model/mixers/dsla.h"

#include "hyla/ops/gated_linear.h"
#include "hyla/ops/recurrence.h"
#include "hyla/util/error.h"

namespace hyla::model {

DualStateLinearAttentionImpl::DualStateLinearAttentionImpl(const MixerConfig& c) : c_(c) {
  validate_mixer_config(c_, "dsla");
  HYLA_CHECK(c.value_heads() == c.n_heads && c.kv_heads() == c.n_heads,
             "{} (dsla): q, k, v and the gates share H = {} heads (got value heads {}, kv heads {})",
             c.name, c.n_heads, c.value_heads(), c.kv_heads());
  int64_t d = c.hidden, key_dim = c.n_heads * c.head_k_dim, value_dim = c.n_heads * c.v_dim();
  q_proj = register_module("q_proj", make_projection(d, key_dim, false, c.init_std));
  k_proj = register_module("k_proj", make_projection(d, key_dim, false, c.init_std));
  v_proj = register_module("v_proj", make_projection(d, value_dim, false, c.init_std));
  o_proj = register_module("o_proj", make_projection(value_dim, d, false, c.init_std));
  // dsla.md: W_gk1 starts as the identity (rectangular eye when H·dk ≠ d), W_gk2 keeps
  // PyTorch's default Linear init; both biases 0; λ ~ U(0, 1).
  gk_proj = register_module("gk_proj", torch::nn::Linear(torch::nn::LinearOptions(d, key_dim).bias(true)));
  gk_proj2 = register_module("gk_proj2", torch::nn::Linear(torch::nn::LinearOptions(d, key_dim).bias(true)));
  {
    torch::NoGradGuard ng;
    gk_proj->weight.copy_(torch::eye(key_dim, d));
    gk_proj->bias.zero_();
    gk_proj2->bias.zero_();
  }
  alpha_list = register_parameter("alpha_list", torch::rand({2}));
  if (c.use_rope) rotary_ = Rotary(c.rope, c.head_k_dim);
}

int64_t DualStateLinearAttentionImpl::state_bytes(int64_t) const {
  return 2 * c_.n_heads * c_.head_k_dim * c_.v_dim() * 4;  // two float32 states
}

std::pair<torch::Tensor, torch::Tensor> DualStateLinearAttentionImpl::gates(const torch::Tensor& x) const {
  auto shape = std::vector<int64_t>{x.size(0), x.size(1), c_.n_heads, c_.head_k_dim};
  auto gate = [&](const torch::nn::Linear& proj) {
    auto z = torch::log_sigmoid(torch::nn::functional::linear(x, proj->weight, proj->bias).to(ops::compute_dtype(x))) / c_.gate_logit_normalizer;
    return z.clamp_min(c_.gate_clamp_min).view(shape);
  };
  return {gate(gk_proj), gate(gk_proj2)};
}

torch::Tensor DualStateLinearAttentionImpl::forward(const torch::Tensor& x, const MixerContext& ctx) {
  check_mixer_input(x, ctx, c_.hidden, c_.name);
  auto o = mixed_output(x, ctx);
  return o_proj(o.reshape({x.size(0), x.size(1), c_.n_heads * c_.v_dim()}).to(x.dtype()));
}

torch::Tensor DualStateLinearAttentionImpl::mixed_output(const torch::Tensor& x, const MixerContext& ctx) {
  int64_t B = x.size(0), T = x.size(1), H = c_.n_heads, dk = c_.head_k_dim, dv = c_.v_dim();
  auto q = q_proj(x).view({B, T, H, dk});
  auto k = k_proj(x).view({B, T, H, dk});
  auto v = v_proj(x).view({B, T, H, dv});
  if (c_.use_rope) {  // not in the reference; offered for HyPE-with-DSLA experiments
    auto [cos, sin] = rotary_.cos_sin(mixer_positions(x, ctx));
    q = apply_rotary(q, cos, sin);
    k = apply_rotary(k, cos, sin);
  }
  auto [g1, g2] = gates(x);
  // Both states in one pass: heads [0, H) carry state 1, [H, 2H) state 2 (same q, k, v).
  auto q2 = torch::cat({q, q}, 2), k2 = torch::cat({k, k}, 2), v2 = torch::cat({v, v}, 2);
  auto g = torch::cat({g1, g2}, 2);
  auto S1 = cached_state(ctx, "S1"), S2 = cached_state(ctx, "S2");
  torch::Tensor S0 = S1.defined() && S2.defined() ? torch::cat({S1, S2}, 1) : torch::Tensor();
  ops::RecurrenceResult r;
  if (ctx.cache && T == 1 && !ctx.cu_seqlens.defined()) {
    r = ops::gated_linear_step(q2.select(1, 0), k2.select(1, 0), v2.select(1, 0), g.select(1, 0), S0);
    r.o = r.o.unsqueeze(1);
  } else {
    ops::RecurrenceOptions opt;
    opt.initial_state = S0;
    opt.cu_seqlens = ctx.cu_seqlens;
    opt.chunk_size = c_.chunk_size;
    r = ops::gated_linear_chunked(q2, k2, v2, g, opt);
  }
  if (ctx.cache) {
    store_state(ctx, "S1", r.state.narrow(1, 0, H).contiguous());
    store_state(ctx, "S2", r.state.narrow(1, H, H).contiguous());
    ctx.cache->length += T;
  }
  // o = w_1 o_1 + w_2 o_2 with w = softmax(λ) (dsla.md "Mixing").
  auto w = torch::softmax(alpha_list, 0);
  return w[0] * r.o.narrow(2, 0, H) + w[1] * r.o.narrow(2, H, H);
}

}  // namespace hyla::model
