#include "hyla/distill/probe_student.h"

#include "hyla/model/hybrid.h"
#include "hyla/util/error.h"
#include "hyla/util/log.h"

namespace hyla::distill {

StageResult run_probe_stage(model::CausalLM& student, model::CausalLM& teacher, const StageConfig& st,
                            std::shared_ptr<const data::TokenDataset> data, uint64_t seed, torch::Device device) {
  StageEnv env;
  teacher->eval();
  for (auto& p : teacher->parameters()) p.set_requires_grad(false);
  env.teacher = teacher;
  env.train_data = std::move(data);
  env.device = device;
  env.autocast = device.is_cuda();
  env.seed = seed;
  env.progress = false;
  torch::AutoGradMode grad(true);  // callers may hold a NoGradGuard; training needs grads
  auto r = run_stage(student, st, env, {});
  student->eval();
  return r;
}

namespace {
torch::Device device_of(model::CausalLM& m) {
  auto ps = m->parameters();
  return ps.empty() ? torch::Device(torch::kCPU) : ps.front().device();
}
}  // namespace

model::CausalLM stage1_all_linear(model::CausalLM& teacher, ConvertOptions convert, const std::string& mixer,
                                  const StageConfig& align, std::shared_ptr<const data::TokenDataset> data,
                                  uint64_t seed, const torch::Tensor& calib, nlohmann::json* info) {
  HYLA_CHECK(align.kind == StageKind::AttentionAlign, "stage 1 of a selection probe must be attention_align");
  const auto& tc = teacher->config();
  convert.hybrid.layer_types.assign(tc.num_hidden_layers, mixer);
  auto device = device_of(teacher);
  model::CausalLM student{nullptr};
  {
    torch::AutoGradMode grad(true);  // Taylor-Calibrate's alignment trains
    student = convert_teacher(teacher, convert, calib);
  }
  student->to(device);
  auto r = run_probe_stage(student, teacher, align, data, seed, device);
  log::info("stage 1 (all {} layers {}, init {}): {} steps, {} tokens, align loss {:.4g} (mean {:.4g})",
            tc.num_hidden_layers, mixer, convert.init, r.steps, r.tokens, r.final_loss, r.mean_loss);
  if (info)
    *info = {{"mixer", mixer}, {"init", convert.init}, {"tokens", align.tokens}, {"steps", r.steps},
             {"seq_len", align.seq_len}, {"batch_size", align.batch_size}, {"lr", align.optim.lr},
             {"final_loss", r.final_loss}, {"mean_loss", r.mean_loss}, {"seconds", r.seconds}};
  return student;
}

model::CausalLM clone_model(model::CausalLM& m) {
  model::CausalLM c(m->config());
  torch::NoGradGuard ng;
  c->to(device_of(m));
  auto src = m->named_parameters(true);
  for (auto& p : c->named_parameters(true)) p.value().copy_(src[p.key()]);
  auto bsrc = m->named_buffers(true);
  for (auto& b : c->named_buffers(true)) b.value().copy_(bsrc[b.key()]);
  c->train(m->is_training());
  return c;
}

void restore_teacher_attention(model::CausalLM& student, model::CausalLM& teacher, int64_t layer) {
  auto m = model::build_mixer(teacher->config(), layer);
  {
    torch::NoGradGuard ng;
    auto src = teacher->layer(layer)->mixer()->named_parameters(true);
    for (auto& p : m->named_parameters(true)) p.value().copy_(src[p.key()]);
  }
  m->to(device_of(student));
  student->layer(layer)->set_mixer(m);
  auto& types = student->mutable_config().layer_types;
  if (types.empty()) types.assign(student->num_layers(), "full_attention");
  types[layer] = teacher->config().layer_type(layer);
}

TeacherWithOneLayerReplaced::TeacherWithOneLayerReplaced(model::CausalLM& stage1, model::CausalLM& teacher,
                                                         int64_t layer) {
  HYLA_CHECK(stage1->num_layers() == teacher->num_layers(), "stage-1 student and teacher differ in layers");
  for (int64_t l = 0; l < teacher->num_layers(); ++l)
    if (l != layer) swaps_.push_back(std::make_unique<ScopedMixerSwap>(stage1, l, teacher->layer(l)->mixer()));
}

}  // namespace hyla::distill
