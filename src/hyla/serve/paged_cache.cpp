#include "hyla/serve/paged_cache.h"

#include "hyla/util/error.h"

namespace hyla::serve {

PagedCache::PagedCache(model::CausalLM& model, int64_t num_blocks, int64_t block_size, int64_t num_slots)
    : num_blocks_(num_blocks), block_size_(block_size), num_slots_(num_slots), kv_(model->num_layers()),
      states_(model->num_layers()) {
  const auto& c = model->config();
  auto opts = model->embed_tokens->weight.options();
  for (int64_t l = 0; l < model->num_layers(); ++l) {
    if (!c.is_attention_layer(l)) continue;
    // Zeros, not empty: padded key rows are masked, but a NaN in them would still poison
    // the softmax's weighted sum (0 · NaN).
    auto shape = std::vector<int64_t>{(num_blocks + 1) * block_size, c.num_key_value_heads, c.head_dim};
    kv_[l].k = torch::zeros(shape, opts);
    kv_[l].v = torch::zeros(shape, opts);
  }
}

void PagedCache::rows(const std::vector<int64_t>& blocks, int64_t start, int64_t n, std::vector<int64_t>& out) const {
  for (int64_t t = start; t < start + n; ++t) {
    int64_t b = t / block_size_;
    HYLA_CHECK(b < static_cast<int64_t>(blocks.size()), "paged cache: position {} is past the {} reserved blocks", t,
               blocks.size());
    out.push_back(blocks[b] * block_size_ + t % block_size_);
  }
}

void PagedCache::gather_states(int64_t layer, const torch::Tensor& slots, model::LayerCache& lc) const {
  for (auto& [key, pool] : states_[layer]) lc.state[key] = pool.index_select(0, slots);
}

torch::Tensor& PagedCache::state_pool(int64_t layer, const std::string& key, const torch::Tensor& like) {
  auto& pool = states_[layer][key];
  if (!pool.defined()) {
    auto shape = like.sizes().vec();
    shape[0] = num_slots_ + 1;
    pool = torch::zeros(shape, like.options());
  }
  return pool;
}

void PagedCache::scatter_states(int64_t layer, const torch::Tensor& slots, const model::LayerCache& lc) {
  for (auto& [key, t] : lc.state) state_pool(layer, key, t).index_copy_(0, slots, t.to(state_pool(layer, key, t).dtype()));
}

model::ModelCache PagedCache::export_kv(const std::vector<int64_t>& blocks, int64_t len,
                                        const std::vector<bool>& linear) const {
  model::ModelCache c(kv_.size());
  std::vector<int64_t> r;
  rows(blocks, 0, len, r);
  auto idx = torch::tensor(r, torch::kInt64);
  for (size_t l = 0; l < kv_.size(); ++l) {
    if (!kv_[l].k.defined() || linear[l]) continue;
    auto i = idx.to(kv_[l].k.device());
    // [len, H_kv, D] -> [1, H_kv, len, D], the contiguous cache layout.
    c.layers[l].k = kv_[l].k.index_select(0, i).permute({1, 0, 2}).unsqueeze(0);
    c.layers[l].v = kv_[l].v.index_select(0, i).permute({1, 0, 2}).unsqueeze(0);
    c.layers[l].length = len;
  }
  c.position = len;
  return c;
}

LayerStates PagedCache::copy_states(int64_t slot, const std::vector<bool>& linear) const {
  LayerStates out(states_.size());
  for (size_t l = 0; l < states_.size(); ++l)
    if (linear[l])
      for (auto& [key, pool] : states_[l]) out[l][key] = pool.narrow(0, slot, 1).clone();
  return out;
}

void PagedCache::import(const std::vector<int64_t>& blocks, int64_t slot, const model::ModelCache& c) {
  std::vector<int64_t> r;
  rows(blocks, 0, c.position, r);
  auto idx = torch::tensor(r, torch::kInt64);
  for (size_t l = 0; l < kv_.size(); ++l) {
    const auto& lc = c.layers[l];
    if (lc.k.defined() && c.position > 0) {
      HYLA_CHECK(kv_[l].k.defined(), "paged cache: layer {} has no K/V pool", l);
      auto i = idx.to(kv_[l].k.device());
      kv_[l].k.index_copy_(0, i, lc.k[0].narrow(1, 0, c.position).transpose(0, 1).to(kv_[l].k.dtype()));
      kv_[l].v.index_copy_(0, i, lc.v[0].narrow(1, 0, c.position).transpose(0, 1).to(kv_[l].v.dtype()));
    }
    for (auto& [key, t] : lc.state) state_pool(l, key, t).narrow(0, slot, 1).copy_(t);
  }
}

int64_t PagedCache::state_bytes() const {
  int64_t b = 0;
  for (auto& layer : states_)
    for (auto& [_, t] : layer) b += t.numel() * static_cast<int64_t>(t.element_size());
  return b;
}

}  // namespace hyla::serve
