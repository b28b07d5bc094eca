#include "hyla/distill/select_bypass.h"

#include <cmath>

#include "hyla/distill/layer_bypass.h"
#include "hyla/eval/perplexity.h"
#include "hyla/eval/recall.h"
#include "hyla/util/log.h"

namespace hyla::distill {

BypassScores bypass_ppl_scores(model::CausalLM& teacher, const torch::Tensor& ids, int64_t ctx, int64_t batch) {
  BypassScores out;
  auto base = eval::perplexity(teacher, ids, ctx, 0, batch, false);
  out.extra = {{"score", "ln(ppl with the layer's attention output zeroed / ppl), nats per token"},
               {"baseline_ppl", base.ppl()}, {"tokens", base.tokens}, {"ctx", ctx}};
  std::vector<double> bypassed;
  for (int64_t l = 0; l < teacher->num_layers(); ++l) {
    ScopedMixerSwap swap(teacher, l, zero_mixer(teacher->layer(l)->mixer()->kind()));
    auto r = eval::perplexity(teacher, ids, ctx, 0, batch, false);
    bypassed.push_back(r.ppl());
    out.scores.push_back(r.nll() - base.nll());
    log::info("bypass-ppl: layer {} bypassed: ppl {:.4g} (baseline {:.4g})", l, r.ppl(), base.ppl());
  }
  out.extra["bypassed_ppl"] = bypassed;
  return out;
}

BypassScores bypass_recall_scores(model::CausalLM& teacher, const data::MqarConfig& mqar, int64_t samples,
                                  uint64_t seed) {
  data::validate(mqar);
  BypassScores out;
  auto base = eval::eval_mqar(teacher, mqar, samples, seed);
  out.extra = {{"score", "MQAR accuracy minus accuracy with the layer's attention output zeroed"},
               {"baseline_accuracy", base.accuracy()}, {"samples", samples}, {"seq_len", mqar.seq_len},
               {"kv_pairs", mqar.num_kv_pairs}, {"mqar_vocab", mqar.vocab_size}, {"mqar_offset", mqar.token_offset},
               {"seed", seed}};
  std::vector<double> acc;
  for (int64_t l = 0; l < teacher->num_layers(); ++l) {
    ScopedMixerSwap swap(teacher, l, zero_mixer(teacher->layer(l)->mixer()->kind()));
    auto r = eval::eval_mqar(teacher, mqar, samples, seed);
    acc.push_back(r.accuracy());
    out.scores.push_back(base.accuracy() - r.accuracy());
    log::info("bypass-recall: layer {} bypassed: MQAR {:.3f} (baseline {:.3f})", l, r.accuracy(), base.accuracy());
  }
  out.extra["bypassed_accuracy"] = acc;
  return out;
}

}  // namespace hyla::distill
