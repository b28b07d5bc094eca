#include "hyla/serve/runner.h"

#include <algorithm>
#include <map>

#include "hyla/util/error.h"

namespace hyla::serve {
namespace {

bool is_attention(model::Mixer m) {
  auto k = m->kind();
  return k == "full_attention" || k == "sliding_attention";
}

torch::Tensor int_tensor(const std::vector<int64_t>& v, torch::Device dev) {
  return torch::tensor(v, torch::kInt64).to(dev);
}

// A decoding row: one token on top of a cache (the batchable kind).
bool decoding(const Work& w) { return w.tokens == 1 && w.seq->computed > 0; }

}  // namespace

Runner::Runner(model::CausalLM model, PagedCache& cache, bool cuda_graphs, int64_t max_batch, int64_t max_len)
    : model_(std::move(model)), cache_(cache),
      graphs_(cuda_graphs && model_->embed_tokens->weight.is_cuda() && model_->config().rope.type != "dynamic",
              max_batch, max_len) {
  std::vector<model::Mixer> own;
  for (int64_t l = 0; l < model_->num_layers(); ++l) own.push_back(model_->layer(l)->mixer());
  add_level(std::move(own));
}

void Runner::add_level(std::vector<model::Mixer> mixers) {
  HYLA_CHECK(static_cast<int64_t>(mixers.size()) == model_->num_layers(), "runner: a level needs {} mixers, got {}",
             model_->num_layers(), mixers.size());
  std::vector<bool> linear;
  for (int64_t l = 0; l < model_->num_layers(); ++l) {
    linear.push_back(!is_attention(mixers[l]));
    HYLA_CHECK(linear.back() || cache_.has_kv(l), "runner: layer {} is attention at level {} but has no K/V pool", l,
               levels_.size());
  }
  levels_.push_back(std::move(mixers));
  linear_.push_back(std::move(linear));
}

torch::Tensor Runner::mix(int64_t layer, model::Mixer mixer, const torch::Tensor& hn, MixerGroup& g) {
  int64_t d = hn.size(1);
  auto x = (g.index.defined() ? hn.index_select(0, g.index) : hn.narrow(0, g.offset, g.n * g.T)).view({g.n, g.T, d});
  auto& ctx = g.ctx;
  if (is_attention(mixer)) {
    ctx.cache = &cache_.kv(layer);
    ctx.paged = &g.paged;
    return mixer->forward(x, ctx);
  }
  // A linear mixer steps its rows' states (gathered from their slots, then put back);
  // a prompt's first chunk starts from no state.
  model::LayerCache lc;
  if (!g.fresh) cache_.gather_states(layer, g.slots, lc);
  ctx.cache = &lc;
  ctx.paged = nullptr;
  auto y = mixer->forward(x, ctx);
  cache_.scatter_states(layer, g.slots, lc);
  ctx.cache = nullptr;
  return y;
}

torch::Tensor Runner::layers(torch::Tensor h, const Groups& groups) {
  for (int64_t l = 0; l < model_->num_layers(); ++l) {
    auto layer = model_->layer(l);
    auto hn = layer->input_layernorm(h);
    auto calls = groups(l);
    torch::Tensor mixed;
    if (calls.size() == 1 && calls[0].second->n * calls[0].second->T == h.size(0) && !calls[0].second->index.defined()) {
      mixed = mix(l, calls[0].first, hn, *calls[0].second).reshape({h.size(0), h.size(1)});
    } else {
      mixed = torch::empty_like(hn);  // every row belongs to exactly one group
      for (auto& [mixer, g] : calls) {
        auto y = mix(l, mixer, hn, *g).reshape({g->n * g->T, h.size(1)});
        if (g->index.defined()) mixed.index_copy_(0, g->index, y);
        else mixed.narrow(0, g->offset, g->n * g->T).copy_(y);
      }
    }
    // The decoder layer's residual structure (DecoderLayerImpl::forward), over all rows.
    h = h + mixed;
    h = h + layer->mlp(layer->post_attention_layernorm(h));
  }
  return model_->norm(h);
}

void Runner::fill_group(MixerGroup& g, const std::vector<const Work*>& rows, const std::vector<int64_t>& offsets,
                        const std::vector<size_t>& members, torch::Device dev) {
  g.n = static_cast<int64_t>(members.size());
  g.T = rows[members[0]]->tokens;
  g.offset = offsets[members[0]];
  g.fresh = g.n == 1 && rows[members[0]]->seq->computed == 0;
  int64_t L = 0;
  for (auto m : members) L = std::max(L, rows[m]->seq->computed + g.T);
  std::vector<int64_t> index, pos, slots, write, read;
  bool contiguous = true;
  for (size_t i = 0; i < members.size(); ++i) {
    auto& s = *rows[members[i]]->seq;
    contiguous = contiguous && offsets[members[i]] == g.offset + static_cast<int64_t>(i) * g.T;
    index.push_back(offsets[members[i]]);
    for (int64_t t = 0; t < g.T; ++t) pos.push_back(s.computed + t);
    slots.push_back(s.slot);
    cache_.rows(s.blocks, s.computed, g.T, write);
    size_t before = read.size();
    cache_.rows(s.blocks, 0, s.computed + g.T, read);
    read.resize(before + L, 0);  // padding: any row, masked
  }
  if (!contiguous) g.index = int_tensor(index, dev);
  g.slots = int_tensor(slots, dev);
  g.paged.write_rows = int_tensor(write, dev);
  g.paged.read_rows = int_tensor(read, dev).view({g.n, L});
  g.ctx.positions = int_tensor(pos, dev).view({g.n, g.T});
}

std::vector<StepResult> Runner::run(const std::vector<Work>& work) {
  if (work.empty()) return {};
  torch::NoGradGuard no_grad;
  auto dev = model_->embed_tokens->weight.device();
  // Decoding rows first: without levels they are one contiguous group.
  std::vector<const Work*> rows;
  for (auto& w : work)
    if (decoding(w)) rows.push_back(&w);
  size_t n_decoding = rows.size();
  for (auto& w : work)
    if (!decoding(w)) rows.push_back(&w);
  if (graphs_.enabled() && n_decoding == rows.size()) {
    int64_t level = rows[0]->seq->level;
    if (std::all_of(rows.begin(), rows.end(), [&](const Work* w) { return w->seq->level == level; }))
      return run_decode_graph(rows, level);
  }
  std::vector<int64_t> ids, offsets;
  for (auto* w : rows) {
    auto& s = *w->seq;
    offsets.push_back(static_cast<int64_t>(ids.size()));
    ids.insert(ids.end(), s.tokens.begin() + s.computed, s.tokens.begin() + s.computed + w->tokens);
  }
  // One group per set of rows sharing a mixer call (see the header); built once per step.
  std::map<std::vector<size_t>, MixerGroup> built;
  auto group = [&](const std::vector<size_t>& members) -> MixerGroup* {
    auto [it, fresh_entry] = built.try_emplace(members);
    if (fresh_entry) fill_group(it->second, rows, offsets, members, dev);
    return &it->second;
  };
  auto groups = [&](int64_t l) {
    std::vector<std::pair<model::Mixer, MixerGroup*>> calls;
    // Decoding rows, split by the mixer their level puts at this layer.
    std::vector<std::pair<model::MixerImpl*, std::vector<size_t>>> split;
    for (size_t r = 0; r < n_decoding; ++r) {
      auto* m = levels_[rows[r]->seq->level][l].get();
      auto it = std::find_if(split.begin(), split.end(), [&](auto& p) { return p.first == m; });
      if (it == split.end()) split.push_back({m, {r}});
      else it->second.push_back(r);
    }
    for (auto& [_, members] : split)
      calls.push_back({levels_[rows[members[0]]->seq->level][l], group(members)});
    for (size_t r = n_decoding; r < rows.size(); ++r) calls.push_back({levels_[rows[r]->seq->level][l], group({r})});
    return calls;
  };
  auto h = layers(model_->embed(int_tensor(ids, dev)), groups);
  // Logits: each row's last position, or all of a prompt chunk's that scores the prompt.
  std::vector<int64_t> pick, counts;
  for (size_t r = 0; r < rows.size(); ++r) {
    auto& s = *rows[r]->seq;
    int64_t T = rows[r]->tokens;
    int64_t n = s.request.sampling.prompt_logprobs && s.prefilling() ? T : 1;
    for (int64_t t = T - n; t < T; ++t) pick.push_back(offsets[r] + t);
    counts.push_back(n);
  }
  auto logits = model_->head(h.index_select(0, int_tensor(pick, dev)));
  std::vector<StepResult> out;
  int64_t at = 0;
  for (size_t r = 0; r < rows.size(); ++r) {
    auto& s = *rows[r]->seq;
    out.push_back({&s, s.computed, rows[r]->tokens, logits.narrow(0, at, counts[r])});
    at += counts[r];
    s.computed += rows[r]->tokens;
  }
  return out;
}

torch::Tensor Runner::decode_forward(const torch::Tensor& ids, MixerGroup& g, int64_t level) {
  auto h = layers(model_->embed(ids), [&](int64_t l) {
    return std::vector<std::pair<model::Mixer, MixerGroup*>>{{levels_[level][l], &g}};
  });
  return model_->head(h);
}

std::vector<StepResult> Runner::run_decode_graph(const std::vector<const Work*>& rows, int64_t level) {
  auto dev = model_->embed_tokens->weight.device();
  int64_t n = static_cast<int64_t>(rows.size()), B = graphs_.batch_bucket(n), need = 0;
  for (auto* w : rows) need = std::max(need, w->seq->computed + 1);
  int64_t L = graphs_.length_bucket(need);
  int64_t scratch_row = cache_.scratch_block() * cache_.block_size();
  std::vector<int64_t> ids(B, 0), pos(B, 0), slots(B, cache_.scratch_slot()), write(B, scratch_row),
      read(B * L, scratch_row);
  for (int64_t i = 0; i < n; ++i) {
    auto& s = *rows[i]->seq;
    ids[i] = s.tokens[s.computed];
    pos[i] = s.computed;
    slots[i] = s.slot;
    std::vector<int64_t> w, r;
    cache_.rows(s.blocks, s.computed, 1, w);
    cache_.rows(s.blocks, 0, s.computed + 1, r);
    write[i] = w[0];
    std::copy(r.begin(), r.end(), read.begin() + i * L);
  }
  auto scratch = [&](GraphInputs& in) {
    in.ids.zero_();
    in.positions.zero_();
    in.slots.fill_(cache_.scratch_slot());
    in.write_rows.fill_(scratch_row);
    in.read_rows.fill_(scratch_row);
  };
  auto fill = [&](GraphInputs& in) {
    in.ids.copy_(int_tensor(ids, dev));
    in.positions.copy_(int_tensor(pos, dev).view({B, 1}));
    in.slots.copy_(int_tensor(slots, dev));
    in.write_rows.copy_(int_tensor(write, dev));
    in.read_rows.copy_(int_tensor(read, dev).view({B, L}));
  };
  auto forward = [&](GraphInputs& in) {
    MixerGroup g;
    g.n = B;
    g.T = 1;
    g.slots = in.slots;
    g.paged = {in.write_rows, in.read_rows};
    g.ctx.positions = in.positions;
    return decode_forward(in.ids, g, level);
  };
  torch::NoGradGuard no_grad;
  // The graph's output buffer is rewritten by the next replay: keep a copy.
  auto logits = graphs_.run(B, L, level, dev, scratch, fill, forward).narrow(0, 0, n).clone();
  std::vector<StepResult> out;
  for (int64_t i = 0; i < n; ++i) {
    auto& s = *rows[i]->seq;
    out.push_back({&s, s.computed, 1, logits.narrow(0, i, 1)});
    s.computed += 1;
  }
  return out;
}

}  // namespace hyla::serve
