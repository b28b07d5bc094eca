#include "hyla/distill/layer_align.h"

#include <fmt/format.h>

#include <cmath>
#include <limits>
#include <map>

#include "hyla/util/error.h"
#include "hyla/util/progress.h"

namespace hyla::distill {

double align_lr(const std::string& name, const TaylorOptions& opt) {
  auto starts = [&](const char* p) { return name.rfind(p, 0) == 0; };
  if (starts("o_proj") || starts("o_norm")) return 0.0;  // §3.4: W_o and o_norm frozen
  if (starts("q_proj") || starts("k_proj") || starts("v_proj")) return opt.lr_qkv;
  return opt.lr_new;
}

AlignResult align_layer(model::MixerImpl& mixer, const torch::Tensor& x, const torch::Tensor& y,
                        const TaylorOptions& opt, ProgressBar* bar, int64_t bar_offset, const std::string& label) {
  // Two AdamW groups; matrices decay, 1-D tensors (A_log, dt_bias, norms, biases) do not
  // (fla's _no_weight_decay; the reference decays them too, a detail no number rests on).
  std::map<std::pair<double, bool>, std::vector<torch::Tensor>> groups;
  std::vector<std::pair<torch::Tensor, bool>> all;  // every parameter, trained or not
  for (auto& p : mixer.named_parameters(true)) {
    double lr = align_lr(p.key(), opt);
    all.emplace_back(p.value(), lr > 0);
    p.value().set_requires_grad(lr > 0);
    if (lr > 0) groups[{lr, p.value().dim() >= 2}].push_back(p.value());
  }
  std::vector<torch::optim::OptimizerParamGroup> pg;
  std::vector<torch::Tensor> trained;
  for (auto& [key, params] : groups) {
    auto o = std::make_unique<torch::optim::AdamWOptions>(key.first);
    o->weight_decay(key.second ? opt.weight_decay : 0.0);
    pg.emplace_back(params, std::move(o));
    trained.insert(trained.end(), params.begin(), params.end());
  }
  HYLA_CHECK(!trained.empty(), "{}: no trainable parameter for alignment", label);
  torch::optim::AdamW adam(pg, torch::optim::AdamWOptions(opt.lr_new));
  mixer.train();
  auto snapshot = [&] {
    std::vector<torch::Tensor> s;
    for (auto& t : trained) s.push_back(t.detach().clone());
    return s;
  };
  auto best = snapshot();
  AlignResult r;
  r.best_loss = std::numeric_limits<double>::infinity();
  auto target = y.detach().to(x.scalar_type());
  for (int64_t step = 0; step <= opt.align_steps; ++step) {
    adam.zero_grad();
    bool update = step < opt.align_steps;
    torch::Tensor loss;
    {
      torch::AutoGradMode grad(update);
      loss = torch::mse_loss(mixer.forward(x, {}), target);
    }
    double l = loss.item<double>();
    if (step == 0) r.initial_loss = l;
    if (!std::isfinite(l)) {  // diverged: stop; the best weights so far are kept
      r.final_loss = l;
      break;
    }
    if (l < r.best_loss) {  // the loss of the weights as they are now, before this update
      r.best_loss = l;
      r.best_step = step;
      best = snapshot();
    }
    r.final_loss = l;
    if (!update) break;
    loss.backward();
    if (opt.grad_clip > 0) torch::nn::utils::clip_grad_norm_(trained, opt.grad_clip);
    adam.step();
    if (bar) bar->update(bar_offset + step + 1, fmt::format("{} loss {:.4g} best {:.4g}", label, l, r.best_loss));
  }
  torch::NoGradGuard ng;
  for (size_t i = 0; i < trained.size(); ++i) trained[i].copy_(best[i]);
  for (auto& [t, _] : all) t.set_requires_grad(true);
  mixer.eval();
  return r;
}

}  // namespace hyla::distill
