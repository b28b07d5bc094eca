#include "hyla/train/adamw.h"

#include <algorithm>

#include "hyla/util/error.h"

namespace hyla::train {

std::vector<NamedParam> named_params_for_training(torch::nn::Module& m) {
  std::vector<NamedParam> out;
  for (auto& p : m.named_parameters(true)) {
    if (!p.value().requires_grad()) continue;
    out.push_back({p.key(), p.value(), p.value().dim() >= 2});
  }
  return out;
}

AdamW::AdamW(std::vector<NamedParam> params, const OptimConfig& cfg)
    : params_(std::move(params)), owned_(params_.size(), true), exp_avg_(params_.size()),
      exp_avg_sq_(params_.size()), step_t_(params_.size()), cfg_(cfg) {}

void AdamW::set_owned(const std::vector<bool>& owned) {
  HYLA_CHECK(owned.size() == params_.size(), "AdamW: ownership list has {} entries for {} parameters", owned.size(),
             params_.size());
  owned_ = owned;
  for (size_t i = 0; i < params_.size(); ++i)
    if (!owned_[i]) exp_avg_[i] = exp_avg_sq_[i] = step_t_[i] = torch::Tensor();
}

void AdamW::ensure_state(size_t i) {
  if (exp_avg_[i].defined()) return;
  auto& p = params_[i].tensor;
  exp_avg_[i] = torch::zeros_like(p, torch::MemoryFormat::Preserve);
  exp_avg_sq_[i] = torch::zeros_like(p, torch::MemoryFormat::Preserve);
  step_t_[i] = torch::full({}, double(steps_), torch::TensorOptions().dtype(torch::kFloat32).device(p.device()));
}

void AdamW::step(double lr) {
  torch::NoGradGuard ng;
  // One fused call per (weight decay on/off, LR scale) group.
  std::vector<std::pair<bool, double>> groups;
  for (auto& np : params_) {
    std::pair<bool, double> g{np.decay, np.lr_scale};
    if (std::find(groups.begin(), groups.end(), g) == groups.end()) groups.push_back(g);
  }
  for (auto [decay, scale] : groups) {
    std::vector<torch::Tensor> ps, gs, ms, vs, ts;
    for (size_t i = 0; i < params_.size(); ++i) {
      auto& np = params_[i];
      if (!owned_[i] || np.decay != decay || np.lr_scale != scale || !np.tensor.grad().defined()) continue;
      ensure_state(i);
      step_t_[i].add_(1);  // the fused kernel reads the incremented step for bias correction
      ps.push_back(np.tensor);
      gs.push_back(np.tensor.grad());
      ms.push_back(exp_avg_[i]);
      vs.push_back(exp_avg_sq_[i]);
      ts.push_back(step_t_[i]);
    }
    if (ps.empty()) continue;
    at::_fused_adamw_(ps, gs, ms, vs, {}, ts, lr * scale, cfg_.beta1, cfg_.beta2, decay ? cfg_.weight_decay : 0.0,
                      cfg_.eps, /*amsgrad=*/false, /*maximize=*/false);
  }
  ++steps_;
}

void AdamW::zero_grad() {
  for (auto& np : params_)
    if (np.tensor.grad().defined()) np.tensor.mutable_grad() = torch::Tensor();
}

int64_t AdamW::state_bytes() const {
  int64_t b = 0;
  for (size_t i = 0; i < params_.size(); ++i)
    if (owned_[i]) b += 2 * params_[i].tensor.numel() * params_[i].tensor.element_size();
  return b;
}

std::vector<std::pair<std::string, torch::Tensor>> AdamW::state_tensors() const {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (size_t i = 0; i < params_.size(); ++i) {
    if (!owned_[i] || !exp_avg_[i].defined()) continue;
    out.emplace_back("exp_avg." + params_[i].name, exp_avg_[i].detach().to(torch::kCPU));
    out.emplace_back("exp_avg_sq." + params_[i].name, exp_avg_sq_[i].detach().to(torch::kCPU));
  }
  return out;
}

void AdamW::load_state(const std::function<torch::Tensor(const std::string&)>& lookup, int64_t steps) {
  torch::NoGradGuard ng;
  steps_ = steps;
  for (size_t i = 0; i < params_.size(); ++i) {
    if (!owned_[i]) continue;
    auto m = lookup("exp_avg." + params_[i].name), v = lookup("exp_avg_sq." + params_[i].name);
    // Neither moment saved: no gradient had reached this parameter (state is made at its
    // first gradient, e.g. a layer after the last aligned one in hidden alignment), so it
    // stays without state, exactly as in the run that wrote the checkpoint.
    if (!m.defined() && !v.defined()) continue;
    HYLA_CHECK(m.defined() && v.defined(), "optimizer state: {} of parameter {} is missing",
               m.defined() ? "exp_avg_sq" : "exp_avg", params_[i].name);
    HYLA_CHECK(m.sizes() == params_[i].tensor.sizes(), "optimizer state: {} has shape {}, parameter has {}",
               params_[i].name, m.sizes(), params_[i].tensor.sizes());
    ensure_state(i);
    exp_avg_[i].copy_(m);
    exp_avg_sq_[i].copy_(v);
    step_t_[i].fill_(double(steps));
  }
}

}  // namespace hyla::train
