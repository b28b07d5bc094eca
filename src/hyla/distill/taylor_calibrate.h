// Taylor-Calibrate (pipeline.md §3; methods.md §3.3–3.4) on a transferred student:
// Phase 1 sets each converted layer's new parameters from statistics of the teacher's
// attention on training text; Phase 2 aligns each layer to the teacher's attention output.
//
// Phase 1, per converted layer and head h (P = teacher attention probabilities):
//   (a) decay      d̄_h = mean attention distance; τ_h = clamp(ln2 / max(d̄_h, 0.5), 1e-3, 5)
//                  (or §3.9 ii: τ fitted to the log attention mass by distance);
//                  GDN: A_log = 0, dt_bias = softplus⁻¹(τ_h) (state half-life = d̄_h);
//                  DSLA: state 1's gate bias so that exp(gk1) = e^(−τ_h) at zero input
//                  (b₁ = logit(e^(−16 τ_h)) with the default normaliser 16); HypeNet: fixed
//                  ALiBi decays, nothing set.
//   (b) write      GDN only: β*_h = β_min + (β_max − β_min)·c_h, c_h = 1 − min-max-normalised
//                  entropy; W_b row h rescaled to mean |row| = logit(β*_h)/√d (published), or
//                  §3.9 (i): b_proj bias = logit(β*_h).
//   (c) value      σ_h = clamp(Σ⟨c, ô⟩ / Σ⟨ô, ô⟩, σ_min, σ_max) with c the teacher context P·V
//                  and ô the mixer's read-out before its output norm (GDN: without the
//                  dk^(−1/2) scale, as the reference); W_v rows of head h scaled by σ_h
//                  (GDN, DSLA, HypeNet). §3.9 (iii): W_v ridge-fitted to σ_h·(teacher
//                  values incl. bias).
//   (d) gate       GDN only: W_g = damping · rms(c) / rms(SiLU(W_v x)) · W_v.
#pragma once
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <string>
#include <vector>

#include "hyla/distill/convert.h"
#include "hyla/model/decoder.h"

namespace hyla::distill {

struct LayerCalibration {
  int64_t layer = 0;
  std::string kind;
  std::vector<double> mean_distance, entropy, log_decay, beta_target, sigma;  // per head
  double gate_alpha = 0;
  double align_initial_loss = 0, align_best_loss = 0, align_final_loss = 0;
  int64_t align_best_step = -1;  // -1: no alignment
};

struct CalibrationReport {
  std::vector<LayerCalibration> layers;
  int64_t tokens = 0;
  nlohmann::json to_json() const;
};

// calib: [B, T] token ids of training text. Changes `student` in place.
// `layout`: the GQA layout transfer used (to expand a teacher v bias like W_v).
CalibrationReport taylor_calibrate(model::CausalLM& teacher, model::CausalLM& student, const torch::Tensor& calib,
                                   const TaylorOptions& opt, GqaLayout layout = GqaLayout::Heads);

}  // namespace hyla::distill
