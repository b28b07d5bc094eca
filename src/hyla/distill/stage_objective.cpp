#include "hyla/distill/stage_objective.h"

#include "hyla/distill/losses.h"
#include "hyla/model/mixers/dsla.h"
#include "hyla/util/error.h"

namespace hyla::distill {

std::vector<int64_t> converted_layers(const model::CausalLM& student, const model::CausalLM& teacher) {
  std::vector<int64_t> out;
  for (int64_t l = 0; l < student->num_layers(); ++l)
    if (student->layer(l)->mixer()->kind() != teacher->layer(l)->mixer()->kind()) out.push_back(l);
  return out;
}

StageObjective::StageObjective(const StageConfig& st, model::CausalLM teacher, torch::Device device,
                               TeacherCache* cache, std::vector<int64_t> diversity_layers)
    : st_(st), teacher_(std::move(teacher)), device_(device), cache_(cache),
      diversity_layers_(std::move(diversity_layers)) {}

StageLoss StageObjective::operator()(model::CausalLM& student, const data::TokenBatch& b, int rank) {
  if (st_.kind == StageKind::AttentionAlign) return attention_align(student, b);
  if (st_.kind == StageKind::HiddenAlign) return hidden_align(student, b);
  return logits_loss(student, b, rank);
}

StageLoss StageObjective::attention_align(model::CausalLM& student, const data::TokenBatch& b) {
  // methods.md §1.4: the teacher runs as itself; converted mixers see its normalised layer
  // input and learn its attention output (after W_o, before the residual add).
  auto ids = b.input.to(device_);
  std::vector<torch::Tensor> hidden, mixer_out;
  torch::Tensor embedded;
  {
    torch::NoGradGuard ng;
    model::ForwardOptions fo;
    fo.hidden_states = &hidden;
    fo.mixer_outputs = &mixer_out;
    fo.compute_logits = false;
    teacher_->forward(ids, fo);
    embedded = teacher_->embed(ids);
  }
  auto layers = converted_layers(student, teacher_);
  HYLA_CHECK(!layers.empty(), "stage {}: the student has no converted layer to align", st_.name);
  auto positions = torch::arange(ids.size(1), torch::TensorOptions().dtype(torch::kInt64).device(device_));
  torch::Tensor total;
  StageLoss out;
  auto per_layer = nlohmann::json::object();
  for (int64_t l : layers) {
    torch::Tensor x;
    {
      torch::NoGradGuard ng;
      x = teacher_->layer(l)->input_layernorm(l == 0 ? embedded : hidden[l - 1]);
    }
    model::MixerContext ctx;
    ctx.positions = positions;
    auto y = student->layer(l)->mixer()->forward(x, ctx);
    auto li = alignment_loss(y, mixer_out[l], b.loss_mask, st_.align);
    per_layer[std::to_string(l)] = li.item<double>();
    total = total.defined() ? total + li : li;
  }
  out.loss = total / double(layers.size());
  out.extra["layer_loss"] = per_layer;
  return out;
}

StageLoss StageObjective::hidden_align(model::CausalLM& student, const data::TokenBatch& b) {
  auto ids = b.input.to(device_);
  std::vector<torch::Tensor> hs_t, hs_s;
  {
    torch::NoGradGuard ng;
    model::ForwardOptions fo;
    fo.hidden_states = &hs_t;
    fo.compute_logits = false;
    teacher_->forward(ids, fo);
  }
  model::ForwardOptions fo;
  fo.hidden_states = &hs_s;
  fo.compute_logits = false;
  student->forward(ids, fo);
  std::vector<int64_t> layers;
  if (st_.align_layers == "all")
    for (int64_t l = 0; l < student->num_layers(); ++l) layers.push_back(l);
  else
    layers = converted_layers(student, teacher_);
  HYLA_CHECK(!layers.empty(), "stage {}: the student has no converted layer to align (layers = \"converted\")",
             st_.name);
  torch::Tensor total;
  for (int64_t l : layers) {
    auto li = alignment_loss(hs_s[l], hs_t[l], b.loss_mask, st_.align);
    total = total.defined() ? total + li : li;
  }
  return {total / double(layers.size()), nlohmann::json::object()};
}

StageLoss StageObjective::logits_loss(model::CausalLM& student, const data::TokenBatch& b, int rank) {
  auto ids = b.input.to(device_);
  StageLoss out;
  std::vector<torch::Tensor> hidden;
  model::ForwardOptions fo;
  if (!diversity_layers_.empty()) fo.hidden_states = &hidden;
  auto logits = student->forward(ids, fo);
  if (st_.loss == "ce") {
    out.loss = ce_loss(logits, b.target, b.loss_mask);
  } else {
    const double tau = st_.temperature;
    torch::Tensor kl;
    if (st_.top_k > 0) {
      std::optional<TopK> top;
      if (cache_) top = cache_->get(b.position, rank);
      if (!top) {
        torch::Tensor tl;
        {
          torch::NoGradGuard ng;
          tl = teacher_->forward(ids);
        }
        top = teacher_top_k(tl, st_.top_k, tau);
        if (cache_) cache_->put(b.position, rank, *top);
        // The approximation's price, measured where the full teacher distribution is at hand.
        torch::NoGradGuard ng;
        out.extra["kl_full"] = kl_loss(tl, logits.detach(), b.loss_mask, tau).item<double>();
      }
      kl = top_k_kl_loss(*top, logits, b.loss_mask, tau);
    } else {
      torch::Tensor tl;
      {
        torch::NoGradGuard ng;
        tl = teacher_->forward(ids);
      }
      kl = kl_loss(tl, logits, b.loss_mask, tau);
    }
    out.loss = kl;
    if (st_.ce_weight > 0) {
      auto ce = ce_loss(logits, b.target, b.loss_mask);
      out.extra["kl"] = kl.item<double>();
      out.extra["ce"] = ce.item<double>();
      out.loss = out.loss + st_.ce_weight * ce;
    }
  }
  if (!diversity_layers_.empty() && st_.diversity_weight > 0) {
    // dsla.md: λ·sim(G1, G2), an added term with its own weight (the reference swaps it in
    // for the KL instead).
    torch::Tensor sim;
    for (int64_t l : diversity_layers_) {
      auto* d = dynamic_cast<model::DualStateLinearAttentionImpl*>(student->layer(l)->mixer().get());
      HYLA_CHECK(d, "stage {}: diversity_weight applies to DSLA layers; layer {} is {}", st_.name, l,
                 student->layer(l)->mixer()->kind());
      auto x = student->layer(l)->input_layernorm(l == 0 ? student->embed(ids) : hidden[l - 1]);
      auto [g1, g2] = d->gates(x);
      auto s = gate_similarity(g1, g2, b.loss_mask);
      sim = sim.defined() ? sim + s : s;
    }
    sim = sim / double(diversity_layers_.size());
    out.extra["gate_similarity"] = sim.item<double>();
    out.loss = out.loss + st_.diversity_weight * sim;
  }
  return out;
}

}  // namespace hyla::distill
