// GA-S2 as Taylor-Calibrate's zero-shot proxy (methods.md §3.6; the trained original is
// the KL-guided probe of §5.2, select_kl_guided.h): for each layer i, convert the teacher
// with ONLY layer i kept as softmax attention and every other layer turned into the
// linear mixer by a named init (zero-gate, taylor, transfer, ...; convert.h), then measure
// that student's zero-shot perplexity on TRAINING text. Lower perplexity: layer i carries
// more as attention, so the k layers with the lowest perplexity are kept.
#pragma once
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <string>
#include <vector>

#include "hyla/distill/convert.h"
#include "hyla/model/decoder.h"

namespace hyla::distill {

struct GaS2Scores {
  std::vector<double> ppl;  // one per layer: perplexity of the student keeping only that layer
  nlohmann::json extra;     // settings and per-layer NLL
};

// convert: the init and mixer settings (its layer choice is replaced per probe);
// mixer: the linear mixer of the converted layers; ids: [N] int64 training tokens scored
// in windows of `ctx`; calib: [B, T] training tokens for inits that calibrate (taylor...).
GaS2Scores ga_s2_scores(model::CausalLM& teacher, const ConvertOptions& convert, const std::string& mixer,
                        const torch::Tensor& ids, int64_t ctx, int64_t batch, const torch::Tensor& calib);

}  // namespace hyla::distill
