#include "hyla/distill/taylor_calibrate.h"

#include <cmath>
#include <optional>

#include "hyla/distill/attention_stats.h"
#include "hyla/distill/layer_align.h"
#include "hyla/distill/transfer.h"
#include "hyla/model/attention.h"
#include "hyla/model/mixers/dsla.h"
#include "hyla/model/mixers/gdn.h"
#include "hyla/model/mixers/hypenet.h"
#include "hyla/util/error.h"
#include "hyla/util/log.h"
#include "hyla/util/progress.h"

namespace hyla::distill {
namespace {

std::vector<double> to_vec(const torch::Tensor& t) {
  auto c = t.to(torch::kCPU, torch::kFloat64).contiguous();
  return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

double softplus_inv(double y) { return y + std::log(-std::expm1(-y)); }

// One converted layer's state across the calibration passes.
struct LayerWork {
  int64_t layer = 0;
  model::MixerImpl* mixer = nullptr;
  const model::AttentionImpl* teacher = nullptr;
  HeadStats stats;
  torch::Tensor num, den;            // Σ⟨c, ô⟩, Σ⟨ô, ô⟩ per head (float64)
  double rms_c_sum = 0, v_sq_sum = 0;  // Σ per-head RMS of c; Σ SiLU(W_v x)²
  int64_t rms_c_n = 0, v_n = 0;
  torch::Tensor xtx, xsum;           // ridge (§3.9 iii): Σ x xᵀ, Σ x
  int64_t head_v = 0;                // value head dim of the read-out
  LayerCalibration out;
};

model::GatedDeltaNetImpl* as_gdn(LayerWork& w) { return dynamic_cast<model::GatedDeltaNetImpl*>(w.mixer); }

// The mixer's read-out before its output norm / W_o, [B, T, H, dv] (§3.3 c).
torch::Tensor mixer_readout(LayerWork& w, const torch::Tensor& x) {
  if (auto* g = as_gdn(w)) return g->recurrent_output(x, {}, 1.0);  // "no scale", as the reference
  if (auto* d = dynamic_cast<model::DualStateLinearAttentionImpl*>(w.mixer)) return d->mixed_output(x, {});
  if (auto* h = dynamic_cast<model::LightningAttentionImpl*>(w.mixer)) return h->recurrent_output(x, {});
  fail("taylor: layer {}: no read-out for mixer \"{}\"", w.layer, w.mixer->kind());
}

torch::nn::Linear value_proj(LayerWork& w) {
  if (auto* g = as_gdn(w)) return g->v_proj;
  if (auto* d = dynamic_cast<model::DualStateLinearAttentionImpl*>(w.mixer)) return d->v_proj;
  return dynamic_cast<model::LightningAttentionImpl*>(w.mixer)->v_proj;
}

// Runs `fn(work, x_layer, ids_slice)` over the calibration batch in slices, with the
// teacher-forced inputs of every converted layer.
template <typename Fn>
void for_each_slice(model::CausalLM& teacher, const torch::Tensor& calib, int64_t slice, std::vector<LayerWork>& ws,
                    Fn fn) {
  torch::NoGradGuard ng;
  for (int64_t s = 0; s < calib.size(0); s += slice) {
    auto ids = calib.narrow(0, s, std::min(slice, calib.size(0) - s));
    auto xs = teacher_layer_inputs(teacher, ids);
    for (auto& w : ws) fn(w, xs[w.layer]);
  }
}

// (a) and (b): decay and write strength from the attention statistics.
void set_decay_and_write(LayerWork& w, const TaylorOptions& opt, int64_t T) {
  auto dbar = w.stats.mean_distance();
  auto ent = w.stats.entropy();
  w.out.mean_distance = to_vec(dbar);
  w.out.entropy = to_vec(ent);
  auto tau = opt.decay_fit == "log_mass" ? w.stats.fitted_log_decay(T - 1) : std::log(2.0) / dbar.clamp_min(0.5);
  tau = tau.clamp(1e-3, 5.0);
  w.out.log_decay = to_vec(-tau);
  int64_t H = tau.size(0);
  torch::NoGradGuard ng;
  if (auto* g = as_gdn(w)) {
    g->A_log.fill_(0.0);
    for (int64_t h = 0; h < H; ++h) g->dt_bias.select(0, h).fill_(softplus_inv(tau[h].item<double>()));
    double lo = ent.min().item<double>(), hi = ent.max().item<double>();
    auto conc = 1.0 - (ent - lo) / std::max(hi - lo, 1e-3);  // 1 = most concentrated head
    auto beta = opt.beta_min + (opt.beta_max - opt.beta_min) * conc;
    w.out.beta_target = to_vec(beta);
    auto logit = torch::log(beta / (1.0 - beta));
    auto W = g->b_proj->weight;
    double d = double(W.size(1));
    if (opt.beta_bias) {
      HYLA_CHECK(g->b_proj->bias.defined(), "taylor: layer {}: --beta-bias needs linear_config beta_bias", w.layer);
      g->b_proj->bias.copy_(logit.to(W.dtype()));
    } else {  // the published rescale: mean |row| = λ/√d (sets the spread, not the mean)
      for (int64_t h = 0; h < H; ++h) {
        auto row = W[h];
        row.copy_(row * (logit[h].item<double>() / std::sqrt(d)) / row.abs().mean().clamp_min(1e-12));
      }
    }
  } else if (auto* ds = dynamic_cast<model::DualStateLinearAttentionImpl*>(w.mixer)) {
    double n = ds->config().gate_logit_normalizer;
    int64_t dk = ds->config().head_k_dim;
    for (int64_t h = 0; h < H; ++h) {
      double nt = n * tau[h].item<double>();  // logsigmoid(b)/n = −τ  ⇒  b = logit(e^(−nτ))
      ds->gk_proj->bias.narrow(0, h * dk, dk).fill_(-nt - std::log(-std::expm1(-nt)));
    }
  }
}

// (c) sums and (d)'s rms(c), from one slice.
void accumulate_value_fit(LayerWork& w, const torch::Tensor& x, const model::ModelConfig& tc, bool ridge) {
  auto ta = teacher_attention(*w.teacher, tc, w.layer, x);
  auto c = ta.context.to(torch::kFloat64);
  auto o = mixer_readout(w, x).to(torch::kFloat64);
  HYLA_CHECK(o.sizes() == c.sizes(), "taylor: layer {}: mixer read-out {} and teacher context {} differ in shape",
             w.layer, o.sizes(), c.sizes());
  w.head_v = o.size(-1);
  auto num = (c * o).sum(torch::IntArrayRef{0, 1, 3}), den = (o * o).sum(torch::IntArrayRef{0, 1, 3});
  w.num = w.num.defined() ? w.num + num : num;
  w.den = w.den.defined() ? w.den + den : den;
  w.rms_c_sum += c.pow(2).mean(-1).sqrt().sum().item<double>();
  w.rms_c_n += c.size(0) * c.size(1) * c.size(2);
  if (ridge) {
    auto xf = x.reshape({-1, x.size(-1)}).to(torch::kFloat64);
    auto xtx = xf.t().mm(xf), xs = xf.sum(0);
    w.xtx = w.xtx.defined() ? w.xtx + xtx : xtx;
    w.xsum = w.xsum.defined() ? w.xsum + xs : xs;
  }
}

// (c): scale W_v's head rows by σ_h, or (§3.9 iii) ridge-fit them to σ_h·(W_v x + b_v).
void set_value_scale(LayerWork& w, const TaylorOptions& opt, const torch::Tensor& v_bias, int64_t n_tokens) {
  auto sigma = (w.num / w.den.clamp_min(1e-30)).clamp(opt.sigma_min, opt.sigma_max);
  w.out.sigma = to_vec(sigma);
  auto W = value_proj(w)->weight;
  int64_t H = sigma.size(0), row_heads = W.size(0) / w.head_v;
  // HypeNet with num_kv_heads < H expands k/v inside the mixer: one scale per kv head,
  // the mean over the query heads it serves.
  if (row_heads < H) sigma = sigma.view({row_heads, H / row_heads}).mean(1);
  int64_t rows = w.head_v;
  torch::NoGradGuard ng;
  auto per_row = sigma.repeat_interleave(rows).to(W.dtype()).unsqueeze(1);
  if (!opt.ridge_v) {
    W.mul_(per_row);
    return;
  }
  // min ‖X Wᵀ − Y‖² + λ̃‖W‖², Y = X W_vᵀ + 1 b_vᵀ:  Wᵀ = (XᵀX + λ̃I)⁻¹ (XᵀX W_vᵀ + (Σx) b_vᵀ).
  auto wt = W.to(torch::kFloat64).t();
  auto rhs = w.xtx.mm(wt);
  if (v_bias.defined()) rhs += w.xsum.unsqueeze(1) * v_bias.to(w.xsum.device(), torch::kFloat64).unsqueeze(0);
  double lam = opt.ridge_lambda * w.xtx.diagonal().mean().item<double>();
  auto A = w.xtx + lam * torch::eye(w.xtx.size(0), w.xtx.options());
  auto fit = at::linalg_solve(A, rhs).t();
  W.copy_((fit * per_row.to(torch::kFloat64)).to(W.dtype()));
  (void)n_tokens;
}

}  // namespace

nlohmann::json CalibrationReport::to_json() const {
  nlohmann::json j = {{"tokens", tokens}, {"layers", nlohmann::json::array()}};
  for (auto& l : layers) {
    nlohmann::json e = {{"layer", l.layer}, {"kind", l.kind}};
    if (!l.mean_distance.empty()) {
      e["mean_distance"] = l.mean_distance, e["entropy"] = l.entropy, e["log_decay"] = l.log_decay;
      if (!l.beta_target.empty()) e["beta_target"] = l.beta_target;
    }
    if (!l.sigma.empty()) e["sigma"] = l.sigma;
    if (l.gate_alpha != 0) e["gate_alpha"] = l.gate_alpha;
    if (l.align_best_step >= 0)
      e["align"] = {{"initial_loss", l.align_initial_loss}, {"best_loss", l.align_best_loss},
                    {"final_loss", l.align_final_loss}, {"best_step", l.align_best_step}};
    j["layers"].push_back(e);
  }
  return j;
}

CalibrationReport taylor_calibrate(model::CausalLM& teacher, model::CausalLM& student, const torch::Tensor& calib,
                                   const TaylorOptions& opt, GqaLayout layout) {
  HYLA_CHECK(calib.defined() && calib.dim() == 2 && calib.size(1) >= 2,
             "taylor: calibration tokens must be [sequences, length >= 2]");
  const auto& tc = teacher->config();
  const auto& sc = student->config();
  std::vector<LayerWork> ws;
  for (int64_t i = 0; i < sc.num_hidden_layers; ++i) {
    if (sc.is_attention_layer(i)) continue;
    LayerWork w;
    w.layer = i;
    w.mixer = student->layer(i)->mixer().get();
    w.teacher = dynamic_cast<const model::AttentionImpl*>(teacher->layer(i)->mixer().get());
    HYLA_CHECK(w.teacher, "taylor: layer {} of the teacher is not softmax attention", i);
    w.out.layer = i;
    w.out.kind = w.mixer->kind();
    ws.push_back(std::move(w));
  }
  CalibrationReport rep;
  rep.tokens = calib.numel();
  int64_t T = calib.size(1), slice = opt.stat_batch;
  if (opt.analytic) {
    log::info("taylor: phase 1 on {} calibration tokens ({} × {})", calib.numel(), calib.size(0), T);
    for_each_slice(teacher, calib, slice, ws, [&](LayerWork& w, const torch::Tensor& x) {
      w.stats.add(teacher_attention(*w.teacher, tc, w.layer, x).probs);
    });
    for (auto& w : ws) set_decay_and_write(w, opt, T);
    for_each_slice(teacher, calib, slice, ws,
                   [&](LayerWork& w, const torch::Tensor& x) { accumulate_value_fit(w, x, tc, opt.ridge_v); });
    for (auto& w : ws) {
      torch::Tensor bv;
      if (w.teacher->v_proj->bias.defined())
        bv = expand_kv(w.teacher->v_proj->bias.detach().cpu().to(torch::kFloat32), tc.num_key_value_heads,
                       tc.num_attention_heads, layout);
      set_value_scale(w, opt, bv, calib.numel());
    }
    // (d) needs rms(SiLU(W_v x)) with the scaled W_v: one more pass over the inputs.
    for_each_slice(teacher, calib, slice, ws, [&](LayerWork& w, const torch::Tensor& x) {
      if (!as_gdn(w) || !as_gdn(w)->config().use_gate) return;
      auto v = torch::silu(value_proj(w)(x)).to(torch::kFloat64);
      w.v_sq_sum += v.pow(2).sum().item<double>();
      w.v_n += v.numel();
    });
    torch::NoGradGuard ng;
    for (auto& w : ws) {
      auto* g = as_gdn(w);
      if (!g || !g->config().use_gate) continue;
      double rms_c = w.rms_c_sum / double(w.rms_c_n), rms_v = std::sqrt(w.v_sq_sum / double(w.v_n));
      w.out.gate_alpha = opt.gate_damping * rms_c / std::max(rms_v, 1e-12);
      g->g_proj->weight.copy_(w.out.gate_alpha * g->v_proj->weight);
    }
  }
  if (opt.align && opt.align_steps > 0) {
    int64_t n = opt.align_sequences > 0 ? std::min(opt.align_sequences, calib.size(0)) : calib.size(0);
    auto ids = calib.narrow(0, 0, n);
    auto xs = teacher_layer_inputs(teacher, ids);
    ProgressBar bar("taylor: align", int64_t(ws.size()) * opt.align_steps, "step");
    bar.set_enabled(opt.progress);
    for (size_t k = 0; k < ws.size(); ++k) {
      auto& w = ws[k];
      torch::Tensor y;
      {
        torch::NoGradGuard ng;
        y = teacher_attention(*w.teacher, tc, w.layer, xs[w.layer]).output;
      }
      auto r = align_layer(*w.mixer, xs[w.layer].detach(), y, opt, &bar, int64_t(k) * opt.align_steps,
                           fmt::format("layer {}", w.layer));
      w.out.align_initial_loss = r.initial_loss, w.out.align_best_loss = r.best_loss;
      w.out.align_final_loss = r.final_loss, w.out.align_best_step = r.best_step;
      log::info("taylor: layer {} ({}) aligned: MSE {:.4g} -> best {:.4g} at step {} (last {:.4g})", w.layer,
                w.out.kind, r.initial_loss, r.best_loss, r.best_step, r.final_loss);
    }
    bar.finish();
  }
  for (auto& w : ws) rep.layers.push_back(w.out);
  return rep;
}

}  // namespace hyla::distill
