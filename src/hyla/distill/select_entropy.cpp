#include "hyla/distill/select_entropy.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "hyla/model/attention.h"
#include "hyla/model/rope.h"
#include "hyla/util/error.h"

namespace hyla::distill {
namespace {

// Last-query-row attention probabilities of one layer, [H, T] float64, from the layer's
// input hidden state h [1, T, d]: the same q/k path as AttentionImpl::forward.
torch::Tensor last_row_probs(model::CausalLM& m, int64_t layer, const torch::Tensor& h) {
  const auto& c = m->config();
  auto attn = std::dynamic_pointer_cast<model::AttentionImpl>(m->layer(layer)->mixer().ptr());
  int64_t T = h.size(1), H = c.num_attention_heads, G = c.num_key_value_heads, D = c.head_dim;
  auto x = m->layer(layer)->input_layernorm(h);
  auto q = attn->q_proj(x).view({1, T, H, D});
  auto k = attn->k_proj(x).view({1, T, G, D});
  if (!attn->q_norm.is_empty()) {
    q = attn->q_norm(q);
    k = attn->k_norm(k);
  }
  if (!c.attention_nope) {
    model::Rotary rot(c.rope, D);
    auto [cs, sn] = rot.cos_sin(torch::arange(T, torch::TensorOptions().dtype(torch::kInt64).device(h.device())));
    q = model::apply_rotary(q, cs, sn);
    k = model::apply_rotary(k, cs, sn);
  }
  auto ql = q[0][T - 1].to(torch::kFloat64);                   // [H, D]
  auto kk = k[0].to(torch::kFloat64).repeat_interleave(H / G, 1);  // [T, H, D]: head h reads kv head h / (H/G)
  auto logits = torch::einsum("hd,thd->ht", {ql, kk}) / std::sqrt(double(D));
  return torch::softmax(logits, -1);  // the last query sees every key: no mask
}

}  // namespace

std::vector<EntropyPrompt> entropy_prompts(int64_t n, int64_t count, int64_t max_len) {
  HYLA_CHECK(count >= 1, "entropy: need at least one prompt");
  HYLA_CHECK(max_len >= 8, "entropy: prompt length {} is too short", max_len);
  HYLA_CHECK(n >= max_len, "entropy: calibration text has {} tokens, fewer than the prompt length {}", n, max_len);
  std::vector<EntropyPrompt> out;
  for (int64_t i = 0; i < count; ++i) {
    int64_t len = std::max<int64_t>(8, max_len / 4 + (count > 1 ? (max_len - max_len / 4) * i / (count - 1) : 0));
    int64_t offset = count > 1 ? (n - len) * i / (count - 1) : 0;
    out.push_back({offset, len});
  }
  return out;
}

std::vector<double> last_row_attention_entropy(model::CausalLM& m, const torch::Tensor& ids,
                                               const std::vector<EntropyPrompt>& prompts) {
  torch::NoGradGuard ng;
  auto dev = m->embed_tokens->weight.device();
  int64_t L = m->num_layers();
  std::vector<double> sum(L, 0.0);
  for (auto& p : prompts) {
    HYLA_CHECK(p.offset >= 0 && p.offset + p.length <= ids.size(0), "entropy: prompt window out of range");
    auto x = ids.narrow(0, p.offset, p.length).view({1, -1}).to(dev);
    std::vector<torch::Tensor> hs;
    model::ForwardOptions fo;
    fo.hidden_states = &hs;
    fo.compute_logits = false;
    m->forward(x, fo);
    for (int64_t l = 0; l < L; ++l) {
      if (!m->config().is_attention_layer(l)) continue;
      auto h_in = l == 0 ? m->embed(x) : hs[l - 1];
      auto probs = last_row_probs(m, l, h_in).to(torch::kCPU);
      // −Σ p ln p over p > 1e-9 (the reference skips tiny terms), then mean over heads.
      auto terms = torch::where(probs > 1e-9, -probs * torch::log(probs.clamp_min(1e-300)), torch::zeros_like(probs));
      sum[l] += terms.sum(-1).mean().item<double>();
    }
  }
  std::vector<double> out(L);
  for (int64_t l = 0; l < L; ++l)
    out[l] = m->config().is_attention_layer(l) ? sum[l] / double(prompts.size()) : std::nan("");
  return out;
}

std::vector<int64_t> entropy_conversion_order(const std::vector<double>& e, const std::string& direction) {
  HYLA_CHECK(direction == "high-keeps" || direction == "low-keeps",
             "--direction {}: unknown (have: high-keeps = DSLA-Serve's order, low-keeps)", direction);
  std::vector<int64_t> order(e.size());
  std::iota(order.begin(), order.end(), 0);
  bool ascending = direction == "high-keeps";  // convert the lowest entropy first
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    if (std::isnan(e[a]) || std::isnan(e[b])) return std::isnan(e[a]) && !std::isnan(e[b]);  // non-attention first
    return ascending ? e[a] < e[b] : e[a] > e[b];
  });
  return order;
}

}  // namespace hyla::distill
