#include "hyla/model/attention.h"

#include <cmath>

#include "hyla/util/error.h"

namespace hyla::model {

AttentionImpl::AttentionImpl(const ModelConfig& c, int64_t layer)
    : layer_(layer), n_heads_(c.num_attention_heads), n_kv_(c.num_key_value_heads), head_dim_(c.head_dim),
      window_(c.layer_type(layer) == "sliding_attention" ? c.sliding_window : 0), nope_(c.attention_nope),
      logit_scale_(c.attention_logit_scale), logn_base_(c.attention_logn_base),
      scale_constant_(c.attention_logit_scale_constant) {
  int64_t d = c.hidden_size;
  q_proj = register_module("q_proj", make_linear(d, n_heads_ * head_dim_, c.attention_bias));
  k_proj = register_module("k_proj", make_linear(d, n_kv_ * head_dim_, c.attention_bias));
  v_proj = register_module("v_proj", make_linear(d, n_kv_ * head_dim_, c.attention_bias));
  o_proj = register_module("o_proj", make_linear(n_heads_ * head_dim_, d, c.attention_out_bias));
  if (c.qk_norm) {
    q_norm = register_module("q_norm", RMSNorm(head_dim_, c.rms_norm_eps, c.rms_norm_unit_offset));
    k_norm = register_module("k_norm", RMSNorm(head_dim_, c.rms_norm_eps, c.rms_norm_unit_offset));
  }
  // The gate's bias follows q_proj's, as in Qwen3-Next, whose gate rows live in q_proj.
  if (c.attention_output_gate) o_gate = register_module("o_gate", make_linear(d, n_heads_ * head_dim_, c.attention_bias));
  if (!nope_) rotary_ = Rotary(c.rope, head_dim_);
}

torch::Tensor attention_mask(int64_t q_start, int64_t tq, int64_t tk, int64_t window,
                             const torch::Tensor& cu_seqlens, torch::Device device) {
  auto opts = torch::TensorOptions().dtype(torch::kInt64).device(device);
  auto qpos = torch::arange(q_start, q_start + tq, opts).unsqueeze(1);
  auto kpos = torch::arange(0, tk, opts).unsqueeze(0);
  auto mask = kpos <= qpos;
  if (window > 0) mask = mask.logical_and(qpos - kpos < window);
  if (cu_seqlens.defined()) {
    // Sequence id of every packed position: count of boundaries at or before it.
    auto bounds = cu_seqlens.to(device).narrow(0, 1, cu_seqlens.size(0) - 1);
    auto qseq = torch::searchsorted(bounds, qpos.squeeze(1), /*out_int32=*/false, /*right=*/true);
    auto kseq = torch::searchsorted(bounds, kpos.squeeze(0), false, true);
    mask = mask.logical_and(qseq.unsqueeze(1) == kseq.unsqueeze(0));
  }
  return mask;
}

std::pair<torch::Tensor, torch::Tensor> AttentionImpl::append_to_cache(LayerCache& cache, const torch::Tensor& k,
                                                                       const torch::Tensor& v) {
  int64_t B = k.size(0), T = k.size(2);
  int64_t need = cache.length + T;
  if (!cache.k.defined() || cache.k.size(2) < need || cache.k.size(0) != B) {
    HYLA_CHECK(!cache.k.defined() || cache.k.size(0) == B,
               "layer {}: KV cache holds batch {} but input has batch {}", layer_, cache.k.size(0), B);
    int64_t cap = std::max<int64_t>(need, cache.k.defined() ? 2 * cache.k.size(2) : need);
    auto nk = torch::empty({B, n_kv_, cap, head_dim_}, k.options());
    auto nv = torch::empty({B, n_kv_, cap, head_dim_}, v.options());
    if (cache.length > 0) {
      nk.narrow(2, 0, cache.length).copy_(cache.k.narrow(2, 0, cache.length));
      nv.narrow(2, 0, cache.length).copy_(cache.v.narrow(2, 0, cache.length));
    }
    cache.k = nk;
    cache.v = nv;
  }
  cache.k.narrow(2, cache.length, T).copy_(k);
  cache.v.narrow(2, cache.length, T).copy_(v);
  cache.length = need;
  return {cache.k.narrow(2, 0, need), cache.v.narrow(2, 0, need)};
}

torch::Tensor AttentionImpl::forward(const torch::Tensor& x, const MixerContext& ctx) {
  HYLA_CHECK(x.dim() == 3, "layer {} attention: input must be [batch, time, hidden], got {}", layer_, x.sizes());
  int64_t B = x.size(0), T = x.size(1);
  auto q = q_proj(x).view({B, T, n_heads_, head_dim_});
  auto k = k_proj(x).view({B, T, n_kv_, head_dim_});
  auto v = v_proj(x).view({B, T, n_kv_, head_dim_});
  if (!q_norm.is_empty()) {
    q = q_norm(q);
    k = k_norm(k);
  }
  if (!nope_) {
    if (!ctx.rope_cos.defined()) std::tie(ctx.rope_cos, ctx.rope_sin) = rotary_.cos_sin(ctx.positions);
    q = apply_rotary(q, ctx.rope_cos, ctx.rope_sin);
    k = apply_rotary(k, ctx.rope_cos, ctx.rope_sin);
  }
  q = scale_queries(q, ctx);
  if (ctx.paged) return forward_paged(q, k, v, x, ctx);
  q = q.transpose(1, 2);  // [B, H, T, D]
  k = k.transpose(1, 2);
  v = v.transpose(1, 2);
  if (ctx.cache && ctx.static_cache) {
    // K/V written at their positions in the preallocated buffers; keys beyond a query's
    // position are masked. Every shape is fixed, so this step can be graph-captured.
    auto& c = *ctx.cache;
    HYLA_CHECK(c.k.defined() && c.k.size(0) == B, "layer {}: static KV cache not allocated for batch {}", layer_, B);
    c.k.index_copy_(2, ctx.positions, k);
    c.v.index_copy_(2, ctx.positions, v);
    auto kpos = torch::arange(c.k.size(2), ctx.positions.options());
    auto mask = kpos.unsqueeze(0) <= ctx.positions.unsqueeze(1);
    if (window_ > 0) mask = mask.logical_and(ctx.positions.unsqueeze(1) - kpos.unsqueeze(0) < window_);
    auto out = at::scaled_dot_product_attention(q, c.k, c.v, mask, 0.0, false, std::nullopt, n_kv_ != n_heads_);
    return project_out(out.transpose(1, 2).reshape({B, T, n_heads_ * head_dim_}), x);
  }
  int64_t past = 0;
  if (ctx.cache) {
    past = ctx.cache->length;
    std::tie(k, v) = append_to_cache(*ctx.cache, k, v);
  }
  int64_t tk = k.size(2);
  bool plain_causal = past == 0 && window_ == 0 && !ctx.cu_seqlens.defined();
  torch::Tensor out;
  if (plain_causal) {
    out = at::scaled_dot_product_attention(q, k, v, {}, 0.0, /*is_causal=*/true, std::nullopt, n_kv_ != n_heads_);
  } else if (T == 1 && window_ == 0 && !ctx.cu_seqlens.defined()) {
    out = at::scaled_dot_product_attention(q, k, v, {}, 0.0, false, std::nullopt, n_kv_ != n_heads_);
  } else {
    auto mask = attention_mask(past, T, tk, window_, ctx.cu_seqlens, x.device());
    out = at::scaled_dot_product_attention(q, k, v, mask, 0.0, false, std::nullopt, n_kv_ != n_heads_);
  }
  return project_out(out.transpose(1, 2).reshape({B, T, n_heads_ * head_dim_}), x);
}

torch::Tensor AttentionImpl::forward_paged(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                           const torch::Tensor& x, const MixerContext& ctx) {
  // q [B, T, H, D], k/v [B, T, Hkv, D]; positions [B, T]. The new K/V go into the pool
  // first, so each row then reads its whole past (this chunk included) through its block
  // table; keys past a query's position (later tokens, other sequences' padding) are
  // masked, so a batch of rows at different lengths is exact (PagedKV).
  auto& c = *ctx.cache;
  const auto& p = *ctx.paged;
  int64_t B = q.size(0), T = q.size(1), L = p.read_rows.size(1);
  HYLA_CHECK(c.k.defined() && c.k.dim() == 3, "layer {}: paged attention needs the layer's K/V pool", layer_);
  c.k.index_copy_(0, p.write_rows, k.reshape({B * T, n_kv_, head_dim_}));
  c.v.index_copy_(0, p.write_rows, v.reshape({B * T, n_kv_, head_dim_}));
  auto rows = p.read_rows.reshape(-1);
  auto keys = c.k.index_select(0, rows).view({B, L, n_kv_, head_dim_}).transpose(1, 2);
  auto values = c.v.index_select(0, rows).view({B, L, n_kv_, head_dim_}).transpose(1, 2);
  auto qpos = ctx.positions.view({B, 1, T, 1});
  auto kpos = torch::arange(L, ctx.positions.options()).view({1, 1, 1, L});
  auto mask = kpos <= qpos;
  if (window_ > 0) mask = mask.logical_and(qpos - kpos < window_);
  auto out = at::scaled_dot_product_attention(q.transpose(1, 2), keys, values, mask, 0.0, false, std::nullopt,
                                              n_kv_ != n_heads_);
  return project_out(out.transpose(1, 2).reshape({B, T, n_heads_ * head_dim_}), x);
}

torch::Tensor AttentionImpl::scale_queries(const torch::Tensor& q, const MixerContext& ctx) const {
  if (logit_scale_ == "constant") return q * scale_constant_;
  // HyPE's s_t = ln(t + a) / ln(a) (methods.md §6.1), t the 0-based absolute position;
  // applied at inference only: HALO trains with the scale off (is_training: the trainer
  // puts the model in train mode).
  if (logit_scale_ != "position" || is_training()) return q;
  auto t = ctx.positions.to(torch::kFloat32);
  auto s = (torch::log(t + logn_base_) / std::log(logn_base_)).to(q.dtype());
  return q * s.unsqueeze(-1).unsqueeze(-1);  // [T, 1, 1] or, per row, [B, T, 1, 1]
}

torch::Tensor AttentionImpl::project_out(const torch::Tensor& heads, const torch::Tensor& x) {
  if (o_gate.is_empty()) return o_proj(heads);
  return o_proj(heads * torch::sigmoid(o_gate(x)));
}

}  // namespace hyla::model
