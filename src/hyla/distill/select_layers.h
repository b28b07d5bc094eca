// `hyla select`: one entry point over every layer-selection method (pipeline.md §1),
// returning a Selection (selection_file.h) with per-layer scores, the full ranking and
// the top-K attention layers; plus its SVG bar plot. Probes read TRAINING text (the
// calibration tokens), never the evaluation text.
#pragma once
#include <torch/torch.h>

#include <string>

#include "hyla/data/synthetic_mqar.h"
#include "hyla/distill/convert.h"
#include "hyla/distill/distill_recipe.h"
#include "hyla/distill/selection_file.h"
#include "hyla/model/decoder.h"

namespace hyla::distill {

struct SelectOptions {
  std::string method = "uniform";  // selection_methods()
  double share = 0.25;             // K = round-half-up(share · L) ...
  int64_t keep = 0;                // ... unless keep > 0
  int64_t ctx = 512, batch = 4;    // perplexity windows (bypass-ppl)
  // bypass-recall: MQAR in the teacher's reserved token range (teacher-tiny: 4096..8191)
  data::MqarConfig mqar = [] {
    data::MqarConfig c;
    c.seq_len = 256;
    c.num_kv_pairs = 16;
    c.vocab_size = 4096;
    c.token_offset = 4096;
    return c;
  }();
  int64_t mqar_samples = 64;
  uint64_t seed = 12345;
  // entropy
  std::string direction = "high-keeps";
  int64_t prompts = 8;
  // ga-s2, kl-guided(-cheap), halo: converted layers get `mixer`, made by `convert`
  // (init, GQA layout, conv init, Taylor options; its layer choice is set per probe).
  // Inits that calibrate read the first calib_sequences × calib_seq_len calibration tokens.
  std::string mixer = "gdn";
  ConvertOptions convert;
  // kl-guided(-cheap), halo: stage 1 (attention_align) and the probe (kl).
  StageConfig align, probe;
  std::string cheap = "remove";     // kl-guided-cheap: remove | short-probe
  int64_t cheap_probe_tokens = 0;   // short-probe budget (tokens)
  bool compare_cheap = false;       // kl-guided: also run both cheap variants, report ρ
  std::string halo_commonsense = "kl";  // halo's C proxy: kl | nll
  std::string save_stage1;              // non-empty: the stage-1 student is saved there
};

// The methods this build offers, for --help and errors.
const std::vector<std::string>& selection_methods();

// calib: [N] int64 tokens of training text (unused by uniform and bypass-recall).
Selection select_layers(model::CausalLM& teacher, const torch::Tensor& calib, const SelectOptions& opt);

// Bar plot of the scores, kept layers shaded.
std::string selection_svg(const Selection& s);

}  // namespace hyla::distill
