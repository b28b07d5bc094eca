// Teacher -> hybrid student (pipeline.md §2–§3): choose the layers that keep softmax
// attention, build linear mixers in the others, transfer the teacher's attention
// projections into them and initialise their new parameters by a named recipe:
//   random       nothing transferred: the mixers keep their fresh fla-style init
//                (what `hyla hybrid` builds);
//   transfer     W_q, W_k, W_v, W_o (+ what the mixer can hold) copied, new parameters at
//                the mixer's defaults (docs/convert.md lists them);
//   random-gate  transfer, W_g at PyTorch's Kaiming-uniform default (the references'
//                "baseline": the layer is built after model init, methods.md §3.2);
//   zero-gate    transfer, W_g = 0 (GDN: the layer starts silent, methods.md §3.2);
//   taylor       transfer + Taylor-Calibrate Phase 1 (statistics) + Phase 2 (alignment);
//   taylor-init  Phase 1 only;   align-only  Phase 2 only, from plain transfer.
// The `[student]` table of a recipe (schema below, docs/convert.md) fills ConvertOptions.
#pragma once
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <string>

#include "hyla/model/config.h"
#include "hyla/model/decoder.h"
#include "hyla/model/hybrid.h"

namespace hyla::distill {

struct CalibrationReport;  // taylor_calibrate.h

// How a GQA teacher's Hkv key/value heads become the mixer's Hq heads.
//   Heads: student head j gets all of teacher kv head j / G (what attention computes);
//   Rows:  each weight row is repeated G times (repeat_interleave over rows), so student
//          head j gets a 1/G slice of one teacher head, each row twice — the layout every
//          published Taylor-Calibrate / HALO table used (pipeline.md "What the reference
//          code does differently").
enum class GqaLayout { Heads, Rows };
GqaLayout gqa_layout_from_name(const std::string& name, const std::string& where);
std::string gqa_layout_name(GqaLayout g);

// Taylor-Calibrate (methods.md §3.3–3.4) and its proposed improvements (§3.9).
struct TaylorOptions {
  // Calibration batch cut from training text: sequences × seq_len tokens (published:
  // 4 × 256 = 1,024). §3.9 (iv), "more calibration tokens", is just a larger batch;
  // statistics are accumulated over it in slices of `stat_batch` sequences.
  int64_t calib_sequences = 4;
  int64_t calib_seq_len = 256;
  int64_t stat_batch = 4;
  bool analytic = true;  // Phase 1: decay, write strength, value scale, output gate
  bool align = true;     // Phase 2: per-layer alignment to the teacher attention output
  // Phase 2 (§3.4): AdamW, full batch every step, keep the true best step.
  int64_t align_steps = 300;
  int64_t align_sequences = 4;  // sequences of the calibration batch used (0 = all)
  double lr_qkv = 1e-4;          // W_q, W_k, W_v
  double lr_new = 1e-3;          // every other trained mixer parameter
  double weight_decay = 0.01;
  double grad_clip = 1.0;
  // Phase 1 constants (§3.3).
  double beta_min = 0.3, beta_max = 0.7;  // write-strength target range
  double gate_damping = 0.01;             // W_g = damping · rms-ratio · W_v
  double sigma_min = 0.1, sigma_max = 10;  // OLS value-scale clamp
  // §3.9 switches.
  bool beta_bias = false;              // (i) a real bias on b_proj set to the target logit
  std::string decay_fit = "half_life"; // (ii) "half_life" (published) | "log_mass" (LS fit)
  bool ridge_v = false;                // (iii) ridge-fit W_v (absorbs a teacher v bias)
  double ridge_lambda = 1e-2;          //      ridge strength, relative to mean diag(XᵀX)
  bool progress = true;                // progress bar with ETA during alignment

  static TaylorOptions from_json(const nlohmann::json& j, const std::string& label);
  nlohmann::json to_json() const;
};

struct ConvertOptions {
  model::HybridOptions hybrid;  // layer_types, linear_config (user's; merged over the
                                // exact-transfer defaults), hype
  std::string init = "transfer";
  GqaLayout gqa = GqaLayout::Heads;
  // Depthwise short convs start as the identity (weight 1 at the current position), so
  // SiLU(conv(W x)) = SiLU(W x) and transfer is not scrambled (pipeline.md §2, proposed).
  // false: fla's init (N(0, 0.02)).
  bool conv_identity = true;
  TaylorOptions taylor;
  uint64_t seed = 0;  // init of the new parameters
  std::string selection;  // [student] selection: a `hyla select` JSON (read by the caller)

  // The recipe's [student] table (docs/convert.md). `label` names the file in errors.
  // Exactly one of attention_every | attention_layers | attention_share | layer_types
  // (none: 1 in 4). `selection` (a hyla select result) is resolved by the caller.
  static ConvertOptions from_json(const nlohmann::json& student, const model::ModelConfig& teacher,
                                  const std::string& label);
  // Refuses what cannot be converted (unknown init, no linear layer, a mixer whose head
  // shape does not match the teacher's for transfer, ...). Errors name the field.
  void validate(const model::ModelConfig& teacher) const;
  bool needs_calibration() const;  // init is taylor, taylor-init or align-only
};

// Inits accepted by ConvertOptions::init.
const std::vector<std::string>& init_names();

// Uniform interleave for a share of attention layers (pipeline.md §1): K = share·L
// rounded half up, at layers ⌊i·L/K⌋ (share 0.25 of 8: layers 0 and 4). A share > 0 that
// rounds to no layer is an error, as is one outside [0, 1].
std::vector<int64_t> attention_layers_for_share(int64_t n_layers, double share, const std::string& where);

// The student config conversion builds: the teacher's, the chosen layer kinds, and
// linear_config = exact-transfer defaults (transfer.h) overridden by the user's keys.
model::ModelConfig student_config(const model::ModelConfig& teacher, const ConvertOptions& opt);

// calib: token ids [B, T] int64 from TRAINING text (needed for taylor, taylor-init,
// align-only). Returns the student on the CPU in float32; the teacher is not changed.
// `report` (optional) receives Taylor-Calibrate's per-layer statistics and losses.
model::CausalLM convert_teacher(model::CausalLM& teacher, const ConvertOptions& opt,
                                const torch::Tensor& calib = {}, CalibrationReport* report = nullptr);

}  // namespace hyla::distill
