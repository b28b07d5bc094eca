#include "hyla/distill/select_halo.h"

#include <algorithm>

#include "hyla/distill/probe_student.h"
#include "hyla/eval/kl.h"
#include "hyla/eval/perplexity.h"
#include "hyla/eval/recall.h"
#include "hyla/util/error.h"
#include "hyla/util/log.h"

namespace hyla::distill {

std::vector<double> halo_scores(const std::vector<double>& r, const std::vector<double>& c) {
  HYLA_CHECK(!r.empty() && r.size() == c.size(), "halo: {} retrieval and {} commonsense scores", r.size(), c.size());
  double r_max = *std::max_element(r.begin(), r.end()), c_max = *std::max_element(c.begin(), c.end());
  std::vector<double> s;
  for (size_t i = 0; i < r.size(); ++i) s.push_back(std::min(50.0, (r_max - r[i]) / (c_max - c[i] + 1e-10)));
  return s;
}

HaloMeasurements halo_measure(model::CausalLM& stage1, model::CausalLM& teacher, const data::MqarConfig& mqar,
                              int64_t mqar_samples, uint64_t seed, const std::string& commonsense,
                              const torch::Tensor& ids, int64_t ctx, int64_t batch) {
  HYLA_CHECK(commonsense == "kl" || commonsense == "nll", "--halo-commonsense {}: must be kl or nll", commonsense);
  data::validate(mqar);
  torch::NoGradGuard ng;
  HaloMeasurements out;
  auto base_r = eval::eval_mqar(teacher, mqar, mqar_samples, seed).accuracy();
  std::vector<double> kl, nll;
  for (int64_t l = 0; l < teacher->num_layers(); ++l) {
    TeacherWithOneLayerReplaced only_l(stage1, teacher, l);
    double r = eval::eval_mqar(stage1, mqar, mqar_samples, seed).accuracy();
    auto k = eval::kl_to_teacher(stage1, teacher, ids, ctx, batch, false);
    kl.push_back(k.mean_kl());
    nll.push_back(k.student_nll_sum / double(std::max<int64_t>(k.tokens, 1)));
    out.retrieval.push_back(r);
    out.commonsense.push_back(commonsense == "kl" ? -kl.back() : -nll.back());
    log::info("halo: layer {} replaced: MQAR {:.4f} (teacher {:.4f}), KL {:.5g}, NLL {:.5g}", l, r, base_r, kl.back(),
              nll.back());
  }
  out.extra = {{"score", "min(50, (R_max - R_i) / (C_max - C_i + 1e-10)) (higher keeps)"},
               {"retrieval", out.retrieval}, {"commonsense", out.commonsense},
               {"retrieval_proxy", "MQAR accuracy of the teacher with only this layer replaced by its stage-1 mixer"},
               {"commonsense_proxy", commonsense == "kl" ? "-KL(teacher || model), nats per token, training text"
                                                         : "-mean NLL (nats per token), training text"},
               {"kl", kl}, {"nll", nll}, {"teacher_mqar_accuracy", base_r}, {"mqar_samples", mqar_samples},
               {"seq_len", mqar.seq_len}, {"kv_pairs", mqar.num_kv_pairs}, {"mqar_seed", seed}, {"ctx", ctx}};
  return out;
}

}  // namespace hyla::distill
