#include "hyla/distill/select_kl_guided.h"

#include "hyla/distill/probe_student.h"
#include "hyla/eval/kl.h"
#include "hyla/util/error.h"
#include "hyla/util/log.h"

namespace hyla::distill {

ProbeScores kl_probe_scores(model::CausalLM& stage1, model::CausalLM& teacher, const StageConfig& probe,
                            std::shared_ptr<const data::TokenDataset> data, uint64_t seed) {
  HYLA_CHECK(probe.kind == StageKind::KL, "KL-guided probes run a kl stage");
  auto params = teacher->parameters();
  auto device = params.empty() ? torch::Device(torch::kCPU) : params.front().device();
  ProbeScores out;
  std::vector<double> final_kl, seconds;
  int64_t steps = 0;
  for (int64_t l = 0; l < teacher->num_layers(); ++l) {
    auto student = clone_model(stage1);
    restore_teacher_attention(student, teacher, l);
    // The same seed for every probe: identical batches, so the KLs differ only by layer.
    auto r = run_probe_stage(student, teacher, probe, data, seed, device);
    out.scores.push_back(r.mean_loss);
    final_kl.push_back(r.final_loss);
    seconds.push_back(r.seconds);
    steps = r.steps;
    log::info("kl-guided probe: layer {} as attention: mean training KL {:.5g} (last step {:.5g}), {} steps", l,
              r.mean_loss, r.final_loss, r.steps);
  }
  out.extra = {{"score", "mean training KL of the probe restoring this layer's attention (lower keeps)"},
               {"final_kl", final_kl}, {"steps", steps}, {"tokens", probe.tokens}, {"seq_len", probe.seq_len},
               {"batch_size", probe.batch_size}, {"lr", probe.optim.lr}, {"group_lr", probe.group_lr},
               {"seed", seed}, {"seconds_per_probe", seconds}};
  return out;
}

ProbeScores kl_remove_scores(model::CausalLM& stage1, model::CausalLM& teacher, const torch::Tensor& ids,
                             int64_t ctx, int64_t batch) {
  torch::NoGradGuard ng;
  ProbeScores out;
  std::vector<double> top1;
  int64_t tokens = 0;
  for (int64_t l = 0; l < teacher->num_layers(); ++l) {
    TeacherWithOneLayerReplaced only_l(stage1, teacher, l);
    auto r = eval::kl_to_teacher(stage1, teacher, ids, ctx, batch, false);
    out.scores.push_back(r.mean_kl());
    top1.push_back(r.top1());
    tokens = r.tokens;
    log::info("kl-guided remove: teacher with layer {} replaced by its stage-1 mixer: KL {:.5g}", l, r.mean_kl());
  }
  out.extra = {{"score", "KL(teacher || teacher with only this layer replaced by its stage-1 mixer), nats per token "
                         "(higher keeps)"},
               {"top1_agreement", top1}, {"tokens", tokens}, {"ctx", ctx}};
  return out;
}

}  // namespace hyla::distill
