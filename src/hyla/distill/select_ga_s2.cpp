#include "hyla/distill/select_ga_s2.h"

#include "hyla/eval/perplexity.h"
#include "hyla/model/hybrid.h"
#include "hyla/util/log.h"

namespace hyla::distill {

GaS2Scores ga_s2_scores(model::CausalLM& teacher, const ConvertOptions& convert, const std::string& mixer,
                        const torch::Tensor& ids, int64_t ctx, int64_t batch, const torch::Tensor& calib) {
  const int64_t L = teacher->num_layers();
  auto params = teacher->parameters();
  auto device = params.empty() ? torch::Device(torch::kCPU) : params.front().device();
  GaS2Scores out;
  std::vector<double> nll;
  int64_t tokens = 0;
  for (int64_t i = 0; i < L; ++i) {
    ConvertOptions o = convert;
    o.hybrid.layer_types = model::layer_types_keeping(L, {i}, mixer);
    o.taylor.progress = false;
    model::CausalLM student{nullptr};
    {
      torch::AutoGradMode grad(true);  // Taylor-Calibrate's alignment trains
      student = convert_teacher(teacher, o, calib);
    }
    student->to(device);
    auto r = eval::perplexity(student, ids, ctx, 0, batch, false);
    out.ppl.push_back(r.ppl());
    nll.push_back(r.nll());
    tokens = r.tokens;
    log::info("ga-s2: only layer {} kept as attention ({} init): zero-shot ppl {:.4g}", i, o.init, r.ppl());
  }
  out.extra = {{"score", "zero-shot perplexity of the student keeping only this layer as attention (lower keeps)"},
               {"init", convert.init}, {"mixer", mixer}, {"nll", nll}, {"tokens", tokens}, {"ctx", ctx},
               {"gqa_layout", gqa_layout_name(convert.gqa)}, {"conv_identity", convert.conv_identity},
               {"seed", convert.seed}};
  if (convert.needs_calibration()) out.extra["taylor"] = convert.taylor.to_json();
  return out;
}

}  // namespace hyla::distill
