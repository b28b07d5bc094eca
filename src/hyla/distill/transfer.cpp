#include "hyla/distill/transfer.h"

#include <cmath>
#include <set>

#include "hyla/model/mixers/dsla.h"
#include "hyla/model/mixers/gdn.h"
#include "hyla/model/mixers/hypenet.h"
#include "hyla/util/error.h"
#include "hyla/util/log.h"

namespace hyla::distill {
using model::ModelConfig;

torch::Tensor expand_kv(const torch::Tensor& w, int64_t n_kv, int64_t n_heads, GqaLayout layout) {
  HYLA_CHECK(n_kv > 0 && n_heads % n_kv == 0, "transfer: {} key/value heads do not divide {} query heads", n_kv,
             n_heads);
  if (n_kv == n_heads) return w.clone();
  if (layout == GqaLayout::Heads) return model::expand_kv_rows(w, n_kv, n_heads);
  return w.repeat_interleave(n_heads / n_kv, 0);  // every row G times (the references' layout)
}

nlohmann::json transfer_linear_config(const ModelConfig& t, const std::vector<std::string>& kinds) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& kind : kinds) {
    nlohmann::json k = {{"num_heads", t.num_attention_heads}, {"head_k_dim", t.head_dim}, {"head_v_dim", t.head_dim}};
    if (kind == "gdn") k["num_v_heads"] = t.num_attention_heads;  // methods.md §3.1: HV = Hq, expand_v 1
    if (kind == "hypenet") {
      k["num_kv_heads"] = t.num_attention_heads;  // HALO's expand_kv_proj (methods.md §6.1 ❸)
      k["qk_norm"] = t.qk_norm;                   // a norm the teacher lacks would change q, k
    }
    j[kind] = k;
  }
  return j;
}

namespace {

void copy_into(torch::Tensor dst, const torch::Tensor& src, const std::string& what, int64_t layer) {
  HYLA_CHECK(dst.defined(), "transfer: layer {}: the mixer has no {} to receive the teacher's", layer, what);
  HYLA_CHECK(dst.sizes() == src.sizes(),
             "transfer: layer {}: mixer {} has shape {}, the teacher's (GQA-expanded) is {}; use the mixer head "
             "config that makes transfer exact (docs/convert.md)",
             layer, what, dst.sizes(), src.sizes());
  dst.copy_(src.to(dst.dtype()));
}

struct TeacherProjections {
  torch::Tensor wq, wk, wv, wo, bq, bk, bv, bo, q_norm, k_norm;
};

TeacherProjections teacher_projections(const model::AttentionImpl& t, const ModelConfig& c, GqaLayout layout) {
  TeacherProjections p;
  int64_t Hq = c.num_attention_heads, Hkv = c.num_key_value_heads;
  auto f = [](const torch::Tensor& x) { return x.detach().to(torch::kCPU, torch::kFloat32); };
  p.wq = f(t.q_proj->weight);
  p.wk = expand_kv(f(t.k_proj->weight), Hkv, Hq, layout);
  p.wv = expand_kv(f(t.v_proj->weight), Hkv, Hq, layout);
  p.wo = f(t.o_proj->weight);
  if (t.q_proj->bias.defined()) {
    p.bq = f(t.q_proj->bias);
    p.bk = expand_kv(f(t.k_proj->bias), Hkv, Hq, layout);
    p.bv = expand_kv(f(t.v_proj->bias), Hkv, Hq, layout);
  }
  if (t.o_proj->bias.defined()) p.bo = f(t.o_proj->bias);
  if (!t.q_norm.is_empty()) {
    p.q_norm = f(t.q_norm->weight);
    p.k_norm = f(t.k_norm->weight);
  }
  return p;
}

// Said once per conversion, not per layer.
void note_dropped(const std::string& kind, const TeacherProjections& p) {
  static std::set<std::string> said;
  auto say = [&](const std::string& what) {
    if (said.insert(kind + what).second)
      log::warn("transfer: {} has no {}; the teacher's are dropped (docs/convert.md)", kind, what);
  };
  if (p.bq.defined()) say("q/k/v biases");
  if (p.bo.defined()) say("o_proj bias");
  if (p.q_norm.defined()) say("q/k norms");
}

}  // namespace

void transfer_attention(const model::AttentionImpl& t, const ModelConfig& teacher, model::MixerImpl& m,
                        int64_t layer, GqaLayout layout) {
  torch::NoGradGuard ng;
  auto p = teacher_projections(t, teacher, layout);
  if (auto* g = dynamic_cast<model::GatedDeltaNetImpl*>(&m)) {
    copy_into(g->q_proj->weight, p.wq, "q_proj.weight", layer);
    copy_into(g->k_proj->weight, p.wk, "k_proj.weight", layer);
    copy_into(g->v_proj->weight, p.wv, "v_proj.weight", layer);
    copy_into(g->o_proj->weight, p.wo, "o_proj.weight", layer);
    note_dropped("gdn", p);
    return;
  }
  if (auto* d = dynamic_cast<model::DualStateLinearAttentionImpl*>(&m)) {
    copy_into(d->q_proj->weight, p.wq, "q_proj.weight", layer);
    copy_into(d->k_proj->weight, p.wk, "k_proj.weight", layer);
    copy_into(d->v_proj->weight, p.wv, "v_proj.weight", layer);
    copy_into(d->o_proj->weight, p.wo, "o_proj.weight", layer);
    note_dropped("dsla", p);
    return;
  }
  if (auto* h = dynamic_cast<model::LightningAttentionImpl*>(&m)) {
    const auto& c = h->config();
    int64_t Hq = teacher.num_attention_heads, Hkv = teacher.num_key_value_heads;
    auto wk = p.wk, wv = p.wv, bk = p.bk, bv = p.bv;
    if (c.kv_heads() == Hkv && Hkv != Hq) {  // the mixer expands whole heads itself
      HYLA_CHECK(layout == GqaLayout::Heads,
                 "transfer: layer {} (hypenet): num_kv_heads = {} expands whole heads inside the mixer; the rows "
                 "layout needs num_kv_heads = {}",
                 layer, Hkv, Hq);
      wk = t.k_proj->weight.detach().to(torch::kCPU, torch::kFloat32);
      wv = t.v_proj->weight.detach().to(torch::kCPU, torch::kFloat32);
      if (bk.defined()) bk = t.k_proj->bias.detach().cpu().to(torch::kFloat32), bv = t.v_proj->bias.detach().cpu().to(torch::kFloat32);
    }
    copy_into(h->q_proj->weight, p.wq, "q_proj.weight", layer);
    copy_into(h->k_proj->weight, wk, "k_proj.weight", layer);
    copy_into(h->v_proj->weight, wv, "v_proj.weight", layer);
    copy_into(h->o_proj->weight, p.wo, "o_proj.weight", layer);
    HYLA_CHECK(p.bq.defined() == c.attention_bias,
               "transfer: layer {} (hypenet): the teacher {} q/k/v biases but the mixer's attention_bias is {}", layer,
               p.bq.defined() ? "has" : "has no", c.attention_bias);
    if (p.bq.defined()) {
      copy_into(h->q_proj->bias, p.bq, "q_proj.bias", layer);
      copy_into(h->k_proj->bias, bk, "k_proj.bias", layer);
      copy_into(h->v_proj->bias, bv, "v_proj.bias", layer);
      if (p.bo.defined()) copy_into(h->o_proj->bias, p.bo, "o_proj.bias", layer);
      else h->o_proj->bias.zero_();
    } else if (p.bo.defined()) {
      log::warn("transfer: layer {} (hypenet): the teacher's o_proj bias is dropped (the mixer has none)", layer);
    }
    HYLA_CHECK(p.q_norm.defined() == c.qk_norm,
               "transfer: layer {} (hypenet): the teacher {} q/k norm but the mixer's qk_norm is {}; a norm on one "
               "side only changes q and k",
               layer, p.q_norm.defined() ? "has a" : "has no", c.qk_norm);
    if (p.q_norm.defined()) {
      copy_into(h->q_norm->weight, p.q_norm, "q_norm.weight", layer);
      copy_into(h->k_norm->weight, p.k_norm, "k_norm.weight", layer);
    }
    return;
  }
  fail("transfer: layer {}: mixer \"{}\" has no weight transfer (have: gdn, dsla, hypenet)", layer, m.kind());
}

void set_conv_identity(model::MixerImpl& m) {
  auto* g = dynamic_cast<model::GatedDeltaNetImpl*>(&m);
  if (!g || !g->config().use_short_conv) return;
  torch::NoGradGuard ng;
  // The causal depthwise conv reads x(t−W+1) .. x(t) with taps w[0] .. w[W−1]: the last
  // tap is the current position (ops/short_conv.h), so [0, …, 0, 1] is the identity.
  for (auto* cv : {&g->q_conv1d, &g->k_conv1d, &g->v_conv1d}) {
    auto w = (*cv)->weight;
    w.zero_();
    w.select(-1, w.size(-1) - 1).fill_(1.0);
    if ((*cv)->bias.defined()) (*cv)->bias.zero_();
  }
}

void set_output_gate(model::MixerImpl& m, const std::string& init, int64_t layer) {
  if (init != "random-gate" && init != "zero-gate") return;
  torch::nn::Linear gate{nullptr};
  if (auto* g = dynamic_cast<model::GatedDeltaNetImpl*>(&m)) gate = g->g_proj;
  else if (auto* h = dynamic_cast<model::LightningAttentionImpl*>(&m)) gate = h->z_proj;
  HYLA_CHECK(!gate.is_empty(), "--init {}: layer {} ({}) has no output gate (dsla has none; gdn needs use_gate, "
             "hypenet output_gate)", init, layer, m.kind());
  torch::NoGradGuard ng;
  if (init == "zero-gate") {
    gate->weight.zero_();
  } else {
    // PyTorch's nn.Linear default: Kaiming-uniform with a = √5, i.e. U(±1/√fan_in).
    double bound = 1.0 / std::sqrt(double(gate->weight.size(1)));
    gate->weight.uniform_(-bound, bound);
  }
  if (gate->bias.defined()) gate->bias.zero_();
}

}  // namespace hyla::distill
