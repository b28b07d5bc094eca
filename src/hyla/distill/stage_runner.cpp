#include "hyla/distill/stage_runner.h"

#include <ATen/autocast_mode.h>
#include <signal.h>

#include <chrono>
#include <fstream>

#include "hyla/data/batch_sampler.h"
#include "hyla/data/sha256.h"
#include "hyla/distill/param_groups.h"
#include "hyla/distill/stage_objective.h"
#include "hyla/distill/teacher_cache.h"
#include "hyla/io/atomic_file.h"
#include "hyla/io/safetensors.h"
#include "hyla/train/adamw.h"
#include "hyla/train/checkpoint.h"
#include "hyla/train/schedule.h"
#include "hyla/util/error.h"
#include "hyla/util/log.h"
#include "hyla/util/progress.h"

namespace hyla::distill {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Test hook, as in train/trainer.cpp: HYLA_FAULT_KILL_AT_STEP=k kills this process with
// SIGKILL in step k (after backward, before the update) of the stage named by
// HYLA_FAULT_STAGE (any stage when unset); HYLA_FAULT_RANK limits it to one rank.
void maybe_fault(const std::string& stage, int64_t step, int rank) {
  static const char* at = std::getenv("HYLA_FAULT_KILL_AT_STEP");
  static const char* which = std::getenv("HYLA_FAULT_STAGE");
  static const char* only = std::getenv("HYLA_FAULT_RANK");
  if (at && std::atoll(at) == step && (!which || stage == which) && (!only || std::atoi(only) == rank))
    ::raise(SIGKILL);
}

struct AutocastGuard {
  bool on;
  explicit AutocastGuard(bool enable) : on(enable) {
    if (on) {
      at::autocast::set_autocast_enabled(at::kCUDA, true);
      at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
    }
  }
  ~AutocastGuard() {
    if (on) {
      at::autocast::set_autocast_enabled(at::kCUDA, false);
      at::autocast::clear_cache();
    }
  }
};

void truncate_metrics_after(const fs::path& f, int64_t step) {
  if (!fs::exists(f)) return;
  std::ifstream in(f);
  std::string line, kept;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    try {
      if (json::parse(line).value("step", (int64_t)0) > step) continue;
    } catch (const json::exception&) {
      continue;  // a line cut by the kill
    }
    kept += line + "\n";
  }
  io::write_text_atomic(f, kept);
}

// What cached top-k entries depend on: another teacher, k, τ or batch layout needs its own.
json cache_key(const StageConfig& st, const StageEnv& env, int world) {
  torch::NoGradGuard ng;
  auto emb = env.teacher->embed_tokens->weight;
  return {{"teacher_config_sha256", data::sha256_hex(env.teacher->config().to_json().dump())},
          {"teacher_embedding_sum", emb.to(torch::kCPU, torch::kFloat64).sum().item<double>()},
          {"top_k", st.top_k}, {"temperature", st.temperature}, {"seq_len", st.seq_len},
          {"batch_size", st.batch_size}, {"world_size", world}, {"seed", env.seed},
          {"data_tokens", env.train_data->total_tokens()}};
}

struct Resumed {
  int64_t step = 0, tokens = 0;
};

Resumed resume_from(const fs::path& c, model::CausalLM& student, train::AdamW& opt, data::BatchSampler& sampler) {
  auto state = train::Checkpointer::read_state(c);
  torch::NoGradGuard ng;
  auto store = io::TensorStore::open(c);
  for (auto& p : student->named_parameters(true)) {
    HYLA_CHECK(store.has(p.key()), "checkpoint {}: missing tensor {}", c.string(), p.key());
    p.value().copy_(store.load(p.key()));
  }
  auto opt_file = io::SafetensorsFile::open(c / "optimizer.safetensors");
  int64_t step = state.at("step").get<int64_t>();
  opt.load_state([&](const std::string& n) { return opt_file->has(n) ? opt_file->load(n, true) : torch::Tensor(); },
                 step);
  if (opt_file->has("rng.cpu")) {
    auto gen = at::detail::getDefaultCPUGenerator();  // a handle to the global generator
    gen.set_state(opt_file->load("rng.cpu", true));
  }
  sampler.set_position(data::DataPosition::from_json(state.at("data_position")));
  return {step, state.value("tokens", (int64_t)0)};
}

void save_checkpoint(train::Checkpointer& ckpt, model::CausalLM& student, train::AdamW& opt,
                     const data::BatchSampler& sampler, const StageEnv& env, train::DataParallel& dp, int64_t step,
                     int64_t tokens, const StageConfig& st) {
  auto opt_state = dp.gather_optimizer_state(opt);
  if (dp.rank() != 0) {
    dp.barrier();
    return;
  }
  train::CheckpointPayload p;
  p.step = step;
  p.state = {{"data_position", sampler.position().to_json()}, {"tokens", tokens}, {"world_size", dp.world_size()},
             {"stage", st.name}};
  p.model = student->state_tensors();
  p.optimizer = std::move(opt_state);
  p.optimizer.emplace_back("rng.cpu", at::detail::getDefaultCPUGenerator().get_state());
  p.config = student->config().to_json();
  p.tokenizer = env.tokenizer;
  // float32 always: the next stage continues from these exact weights after a resume.
  ckpt.save(p, "float32", uint64_t(env.run.shard_mb) << 20);
  dp.barrier();
}

}  // namespace

void write_stage_result(model::CausalLM& student, const fs::path& dir, const StageEnv& env, const json& summary) {
  model::save_causal_lm(student, dir, uint64_t(env.run.shard_mb) << 20, torch::kFloat32);
  if (!env.tokenizer.empty() && fs::exists(env.tokenizer))
    io::write_text_atomic(dir / "tokenizer.json", io::read_text_file(env.tokenizer));
  io::write_text_atomic(dir / "stage.json", summary.dump(2) + "\n");  // last: marks the stage done
}

bool stage_done(const fs::path& dir) { return fs::exists(dir / "stage.json"); }

StageResult run_stage(model::CausalLM& student, const StageConfig& st0, const StageEnv& env, const fs::path& dir,
                      const LayerRestriction& layers) {
  auto dp = env.dp ? env.dp : std::make_shared<train::DataParallel>();
  const int rank = dp->rank(), world = dp->world_size();
  StageConfig st = st0;
  st.optim.steps = st.steps(world);
  student->to(env.device);
  student->train();
  auto params = select_trained_parameters(student, st, layers.train_layers, layers.earlier_layers,
                                          layers.earlier_scale);
  train::AdamW opt(params, st.optim);
  dp->prepare(params);
  opt.set_owned(dp->owned(params));

  data::SamplerOptions so;
  so.seq_len = st.seq_len;
  so.batch_size = st.batch_size;
  so.seed = env.seed;
  so.rank = rank;
  so.world_size = world;
  data::BatchSampler sampler(env.train_data, so);

  std::unique_ptr<TeacherCache> cache;
  if (st.top_k > 0 && st.loss == "kl" && (!dir.empty() || !st.teacher_cache.empty())) {
    fs::path where = st.teacher_cache.empty() ? env.teacher_cache_root / st.name : fs::path(st.teacher_cache);
    cache = std::make_unique<TeacherCache>(where, cache_key(st, env, world));
  }
  StageObjective objective(st, env.teacher, env.device, cache.get(), layers.diversity_layers);

  int64_t step = 0, tokens = 0;
  std::unique_ptr<train::Checkpointer> ckpt;
  const fs::path metrics = dir / "metrics.jsonl";
  if (!dir.empty()) {
    ckpt = std::make_unique<train::Checkpointer>(dir, env.run.keep_checkpoints);
    if (auto c = ckpt->latest_valid()) {
      auto r = resume_from(*c, student, opt, sampler);
      step = r.step;
      tokens = r.tokens;
      if (rank == 0) truncate_metrics_after(metrics, step);
      log::info("stage {}: resumed from {} (step {} of {})", st.name, c->string(), step, st.optim.steps);
    } else if (rank == 0) {
      fs::create_directories(dir);
      io::write_text_atomic(metrics, "");
    }
  }
  const int64_t per_step = st.tokens_per_step(world);
  if (step == 0)
    log::info("stage {} ({}): {} steps of {} tokens, {} trained tensors, lr {:.2e}", st.name, stage_kind_name(st.kind),
              st.optim.steps, per_step, params.size(), st.optim.lr);
  ProgressBar bar(st.name, st.optim.steps, "step");
  bar.set_enabled(rank == 0 && env.progress);
  auto t0 = std::chrono::steady_clock::now();
  const int64_t start = step;
  StageResult res;
  double loss_sum = 0;
  while (step < st.optim.steps) {
    double lr = train::learning_rate(st.optim, step);
    double step_loss = 0;
    json extra = json::object();
    for (int64_t micro = 0; micro < st.grad_accum; ++micro) {
      auto b = sampler.next();
      if (micro + 1 == st.grad_accum) dp->begin_gradient_sync();
      StageLoss l;
      {
        AutocastGuard ac(env.autocast);
        l = objective(student, b, rank);
      }
      auto loss = l.loss / double(st.grad_accum);
      loss.backward();
      step_loss += loss.item<double>();
      for (auto& [k, v] : l.extra.items())
        if (v.is_number()) extra[k] = extra.value(k, 0.0) + v.get<double>() / double(st.grad_accum);
    }
    dp->finish_gradient_sync();
    maybe_fault(st.name, step, rank);
    double gnorm = 0;
    {
      std::vector<torch::Tensor> ps;
      for (auto& np : opt.params())
        if (np.tensor.grad().defined()) ps.push_back(np.tensor);
      gnorm = torch::nn::utils::clip_grad_norm_(ps, st.optim.grad_clip > 0 ? st.optim.grad_clip : 1e30);
    }
    opt.step(lr);
    opt.zero_grad();
    dp->after_optimizer_step(opt.params());
    ++step;
    tokens += per_step;
    double mean_loss = dp->mean(step_loss);
    res.final_loss = mean_loss;
    loss_sum += mean_loss;
    double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    double tps = double(step - start) * double(per_step) / std::max(elapsed, 1e-9);
    if (!dir.empty() && rank == 0 && (step % st.log_every == 0 || step == st.optim.steps)) {
      json m = {{"step", step}, {"loss", mean_loss}, {"lr", lr}, {"grad_norm", gnorm}, {"tokens", tokens},
                {"tokens_per_s", tps}};
      m.update(extra);
      std::ofstream(metrics, std::ios::app) << m.dump() << "\n";
    }
    bar.update(step, fmt::format("loss {:.4f} lr {:.2e} {} tok/s", mean_loss, lr, human_count(tps)));
    if (ckpt && ((st.save_every > 0 && step % st.save_every == 0) || step == st.optim.steps))
      save_checkpoint(*ckpt, student, opt, sampler, env, *dp, step, tokens, st);
  }
  bar.finish();
  opt.zero_grad();  // drops the data-parallel bucket views too
  for (auto& p : student->parameters()) p.set_requires_grad(true);
  student->eval();
  res.steps = step;
  res.tokens = tokens;
  res.mean_loss = step > start ? loss_sum / double(step - start) : res.final_loss;
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  res.tokens_per_second = double(step - start) * double(per_step) / std::max(res.seconds, 1e-9);
  res.summary = {{"stage", st.name}, {"kind", stage_kind_name(st.kind)}, {"loss", st.loss}, {"steps", step},
                 {"tokens", tokens}, {"final_loss", res.final_loss}, {"world_size", world}};
  if (cache) res.summary["teacher_cache"] = {{"hits", cache->hits()}, {"misses", cache->misses()}};
  if (!dir.empty()) {
    if (rank == 0) write_stage_result(student, dir, env, res.summary);
    dp->barrier();
  }
  return res;
}

}  // namespace hyla::distill
