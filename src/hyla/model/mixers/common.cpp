#include "hyla/model/mixers/common.h"

#include "hyla/ops/recurrence.h"
#include "hyla/util/error.h"

namespace hyla::model {

ShortConvImpl::ShortConvImpl(int64_t channels, int64_t kernel, bool with_bias) {
  weight = register_parameter("weight", torch::empty({channels, 1, kernel}));
  if (with_bias) bias = register_parameter("bias", torch::zeros({channels}));
}

NormWeightImpl::NormWeightImpl(int64_t n) { weight = register_parameter("weight", torch::ones({n})); }

torch::nn::Linear make_projection(int64_t in, int64_t out, bool bias, double std) {
  torch::nn::Linear l(torch::nn::LinearOptions(in, out).bias(bias));
  torch::NoGradGuard ng;
  l->weight.normal_(0.0, std);
  if (bias) l->bias.zero_();
  return l;
}

void check_mixer_input(const torch::Tensor& x, const MixerContext& ctx, int64_t hidden,
                       const std::string& name) {
  HYLA_CHECK(x.dim() == 3 && x.size(2) == hidden, "{}: input must be [B, T, {}], got {}", name,
             hidden, ops::shape_str(x.sizes()));
  HYLA_CHECK(!ctx.cu_seqlens.defined() || x.size(0) == 1,
             "{}: packed sequences (cu_seqlens) need batch 1, got {}", name, x.size(0));
  bool per_row = ctx.positions.defined() && ctx.positions.dim() == 2;
  HYLA_CHECK(!ctx.positions.defined() ||
                 (per_row ? ctx.positions.size(0) == x.size(0) && ctx.positions.size(1) == x.size(1)
                          : ctx.positions.numel() == x.size(1)),
             "{}: positions must have one entry per token ({}), got {}", name, x.size(1),
             ops::shape_str(ctx.positions.sizes()));
}

torch::Tensor mixer_positions(const torch::Tensor& x, const MixerContext& ctx) {
  if (ctx.positions.defined()) return ctx.positions.dim() == 2 ? ctx.positions : ctx.positions.reshape(-1);
  int64_t T = x.size(1);
  auto opts = torch::TensorOptions().dtype(torch::kInt64).device(x.device());
  if (ctx.cu_seqlens.defined()) {
    // Positions restart at each packed sequence.
    auto idx = torch::arange(T, opts);
    auto bounds = ctx.cu_seqlens.to(opts);
    auto seq = torch::searchsorted(bounds.narrow(0, 1, bounds.size(0) - 1), idx, false, true);
    return idx - bounds.index_select(0, seq);
  }
  int64_t start = ctx.cache ? ctx.cache->length : 0;
  return torch::arange(start, start + T, opts);
}

torch::Tensor cached_state(const MixerContext& ctx, const std::string& key) {
  if (!ctx.cache) return {};
  auto it = ctx.cache->state.find(key);
  return it == ctx.cache->state.end() ? torch::Tensor() : it->second;
}

void store_state(const MixerContext& ctx, const std::string& key, const torch::Tensor& value) {
  if (!ctx.cache) return;
  auto& slot = ctx.cache->state[key];
  if (ctx.static_cache && slot.defined() && slot.sizes() == value.sizes() && slot.dtype() == value.dtype())
    slot.copy_(value);
  else
    slot = value;
}

void validate_mixer_config(const MixerConfig& c, const std::string& kind) {
  const auto& n = c.name;
  HYLA_CHECK(c.hidden > 0, "{} ({}): hidden size must be positive, got {}", n, kind, c.hidden);
  HYLA_CHECK(c.n_heads > 0, "{} ({}): number of heads must be positive, got {}", n, kind, c.n_heads);
  HYLA_CHECK(c.head_k_dim > 0 && c.v_dim() > 0, "{} ({}): head dims must be positive, got dk={} dv={}",
             n, kind, c.head_k_dim, c.v_dim());
  HYLA_CHECK(c.value_heads() % c.n_heads == 0,
             "{} ({}): value heads {} must be a multiple of query/key heads {}", n, kind,
             c.value_heads(), c.n_heads);
  HYLA_CHECK(c.n_heads % c.kv_heads() == 0,
             "{} ({}): key/value heads {} must divide query heads {}", n, kind, c.kv_heads(), c.n_heads);
  HYLA_CHECK(c.conv_size >= 1, "{} ({}): conv_size must be >= 1, got {}", n, kind, c.conv_size);
  HYLA_CHECK(c.chunk_size >= 1, "{} ({}): chunk_size must be >= 1, got {}", n, kind, c.chunk_size);
}

}  // namespace hyla::model
