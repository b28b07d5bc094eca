#include "hyla/train/trainer.h"

#include <ATen/autocast_mode.h>
#include <signal.h>

#include <chrono>
#include <cmath>
#include <fstream>

#include "hyla/io/atomic_file.h"
#include "hyla/io/safetensors.h"
#include "hyla/io/tokenizer.h"
#include "hyla/model/layer_recomputes.h"
#include "hyla/train/init.h"
#include "hyla/train/schedule.h"
#include "hyla/train/synthetic_mix.h"
#include "hyla/util/error.h"
#include "hyla/util/log.h"
#include "hyla/util/progress.h"

namespace hyla::train {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

torch::Device pick_device(const std::string& name) {
  if (name == "auto") return torch::cuda::is_available() ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
  return torch::Device(name);
}

// A test hook: HYLA_FAULT_KILL_AT_STEP=k sends SIGKILL to this process in the middle of
// step k (after the backward pass, before the optimizer step), to prove resume. With
// HYLA_FAULT_RANK=r only data-parallel rank r is killed.
void maybe_fault(int64_t step, int rank) {
  static const char* env = std::getenv("HYLA_FAULT_KILL_AT_STEP");
  static const char* only = std::getenv("HYLA_FAULT_RANK");
  if (env && std::atoll(env) == step && (!only || std::atoi(only) == rank)) ::raise(SIGKILL);
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

}  // namespace

Trainer::Trainer(Recipe recipe, std::shared_ptr<DataParallel> dp)
    : r_(std::move(recipe)), dp_(dp ? std::move(dp) : std::make_shared<DataParallel>()) {}

torch::Tensor Trainer::loss_fn(model::CausalLM& m, const data::TokenBatch& b, torch::Device dev,
                               bool checkpoint_layers) {
  model::ForwardOptions fo;
  fo.checkpoint_layers = checkpoint_layers;
  auto logits = m->forward(b.input.to(dev), fo);
  auto V = logits.size(-1);
  auto ce = torch::nn::functional::cross_entropy(
      logits.reshape({-1, V}).to(torch::kFloat32), b.target.to(dev).reshape({-1}),
      torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone));
  auto mask = b.loss_mask.to(dev).reshape({-1});
  return (ce * mask).sum() / mask.sum().clamp_min(1.0);
}

void Trainer::setup() {
  device_ = dp_->local_device(pick_device(r_.run.device));
  autocast_ = device_.is_cuda() && r_.run.dtype != "float32";
  torch::manual_seed(r_.run.seed);
  // Model: from an HF checkpoint, or a fresh one from the [model] config.
  if (r_.model.contains("init_from")) {
    model_ = model::load_causal_lm(r_.model["init_from"].get<std::string>(), torch::kCPU, torch::kFloat32);
  } else {
    auto cfg = model::ModelConfig::from_json(r_.model, r_.path.string() + " [model]");
    model_ = model::CausalLM(cfg);
    init_weights(model_);
  }
  model_->to(device_);
  model_->train();
  auto params = named_params_for_training(*model_);
  opt_ = std::make_unique<AdamW>(params, r_.optim);
  dp_->prepare(params);
  opt_->set_owned(dp_->owned(params));
  // Data.
  HYLA_CHECK(!r_.data.dir.empty(), "{}: [data] dir is required (a directory made by `hyla data prepare`)",
             r_.path.string());
  auto train_data = data::TokenDataset::open(r_.data.dir, "train");
  std::shared_ptr<io::Tokenizer> tok;
  if (!r_.data.tokenizer.empty()) {
    tokenizer_path_ = r_.data.tokenizer;
    tok = io::Tokenizer::load(tokenizer_path_);
  }
  data::SamplerOptions so;
  so.seq_len = r_.data.seq_len;
  so.batch_size = r_.data.batch_size;
  so.seed = r_.run.seed;
  so.rank = dp_->rank();
  so.world_size = dp_->world_size();
  so.synthetic_share = r_.data.synthetic_share;
  data::SyntheticSource synth;
  if (r_.data.synthetic_share > 0)
    synth = make_synthetic_source(r_.data.synthetic, tok, train_data, r_.data.seq_len, model_->config().vocab_size);
  train_ = std::make_unique<data::BatchSampler>(train_data, so, synth);
  try {
    val_data_ = data::TokenDataset::open(r_.data.dir, "validation");
  } catch (const Error& e) {
    log::warn("no validation split ({}); validation is skipped", e.what());
  }
  ckpt_ = std::make_unique<Checkpointer>(r_.run.out_dir, r_.run.keep_checkpoints);
}

bool Trainer::try_resume() {
  auto c = ckpt_->latest_valid();
  if (!c) return false;
  auto state = Checkpointer::read_state(*c);
  torch::NoGradGuard ng;
  auto store = io::TensorStore::open(*c);
  for (auto& p : model_->named_parameters(true)) {
    HYLA_CHECK(store.has(p.key()), "checkpoint {}: missing tensor {}", c->string(), p.key());
    p.value().copy_(store.load(p.key()));
  }
  auto opt_file = io::SafetensorsFile::open(*c / "optimizer.safetensors");
  opt_->load_state([&](const std::string& n) { return opt_file->has(n) ? opt_file->load(n, true) : torch::Tensor(); },
                   state.at("step").get<int64_t>());
  if (opt_file->has("rng.cpu")) {
    auto gen = at::detail::getDefaultCPUGenerator();  // a handle to the global generator
    gen.set_state(opt_file->load("rng.cpu", true));
  }
  step_ = state.at("step").get<int64_t>();
  tokens_ = state.value("tokens", (int64_t)0);
  // The data position is global (all ranks advance together), so a different world
  // size resumes at the same place in the stream.
  train_->set_position(data::DataPosition::from_json(state.at("data_position")));
  int64_t old_world = state.value("world_size", (int64_t)1);
  if (old_world != dp_->world_size())
    log::info("resuming a run saved at world size {} on world size {}", old_world, dp_->world_size());
  truncate_metrics_after(step_);
  log::info("resumed from {} (step {}, {} tokens seen)", c->string(), step_, tokens_);
  return true;
}

void Trainer::save(int64_t step) {
  // Every rank holds full weights; ZeRO-1 optimizer shards are gathered by name to rank
  // 0 (a collective, so every rank takes part), which alone writes.
  auto opt_state = dp_->gather_optimizer_state(*opt_);
  CheckpointPayload p;
  p.step = step;
  p.state = {{"data_position", train_->position().to_json()}, {"tokens", tokens_},
             {"world_size", dp_->world_size()}, {"recipe", r_.raw}, {"val_loss", last_val_loss_}};
  if (dp_->rank() != 0) {
    dp_->barrier();  // the checkpoint exists for everyone once rank 0 has written it
    return;
  }
  p.model = model_->state_tensors();
  p.optimizer = std::move(opt_state);
  p.optimizer.emplace_back("rng.cpu", at::detail::getDefaultCPUGenerator().get_state());
  p.config = model_->config().to_json();
  p.tokenizer = tokenizer_path_;
  auto path = ckpt_->save(p, r_.run.save_dtype, uint64_t(r_.run.shard_mb) << 20);
  log::info("saved {}", path.string());
  dp_->barrier();
}

double Trainer::validate() {
  if (!val_data_ || r_.run.eval_batches <= 0) return std::nan("");
  torch::NoGradGuard ng;
  model_->eval();
  data::SamplerOptions so;
  so.seq_len = r_.data.seq_len;
  so.batch_size = r_.data.batch_size;
  so.seed = 0;  // the same validation windows every time
  so.rank = dp_->rank();
  so.world_size = dp_->world_size();
  data::BatchSampler val(val_data_, so);
  int64_t n = std::min<int64_t>(r_.run.eval_batches, std::max<int64_t>(1, val.steps_per_epoch()));
  double total = 0;
  for (int64_t i = 0; i < n; ++i) {
    auto b = val.next();
    AutocastGuard ac(autocast_);
    total += loss_fn(model_, b, device_).item<double>();
  }
  model_->train();
  return dp_->mean(total / n);
}

void Trainer::log_metrics(const json& j) {
  if (dp_->rank() != 0) return;
  fs::create_directories(r_.run.out_dir);
  std::ofstream out(fs::path(r_.run.out_dir) / "metrics.jsonl", std::ios::app);
  out << j.dump() << "\n";
}

void Trainer::truncate_metrics_after(int64_t step) {
  if (dp_->rank() != 0) return;
  auto f = fs::path(r_.run.out_dir) / "metrics.jsonl";
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

TrainResult Trainer::run() {
  setup();
  bool resumed = try_resume();
  if (!resumed && dp_->rank() == 0) {
    fs::create_directories(r_.run.out_dir);
    io::write_text_atomic(fs::path(r_.run.out_dir) / "metrics.jsonl", "");
    log::info("training {} ({} parameters) on {} [{}], {} steps of {} tokens", r_.run.name,
              human_count(double(model_->num_parameters())), device_.str(), dp_->describe(), r_.optim.steps,
              human_count(double(r_.data.batch_size * r_.data.seq_len * r_.data.grad_accum * dp_->world_size())));
  }
  const int64_t tokens_per_step = r_.data.batch_size * r_.data.seq_len * r_.data.grad_accum * dp_->world_size();
  ProgressBar bar(r_.run.name, r_.optim.steps, "step");
  bar.set_enabled(dp_->rank() == 0);
  auto t0 = std::chrono::steady_clock::now();
  int64_t start_step = step_;
  TrainResult res;
  double loss_acc = 0;
  while (step_ < r_.optim.steps) {
    double lr = learning_rate(r_.optim, step_);
    double step_loss = 0;
    int64_t synth = 0, recomputes_before = model::checkpointed_layer_recomputes();
    for (int64_t micro = 0; micro < r_.data.grad_accum; ++micro) {
      auto b = train_->next();
      synth += b.synthetic;
      bool last = micro + 1 == r_.data.grad_accum;
      if (last) dp_->begin_gradient_sync();
      torch::Tensor loss;
      {
        AutocastGuard ac(autocast_);
        loss = loss_fn(model_, b, device_, r_.run.activation_checkpointing) / double(r_.data.grad_accum);
      }
      loss.backward();
      step_loss += loss.item<double>();
    }
    dp_->finish_gradient_sync();
    maybe_fault(step_, dp_->rank());
    double gnorm = 0;
    {
      std::vector<torch::Tensor> ps;
      for (auto& np : opt_->params())
        if (np.tensor.grad().defined()) ps.push_back(np.tensor);
      gnorm = torch::nn::utils::clip_grad_norm_(ps, r_.optim.grad_clip > 0 ? r_.optim.grad_clip : 1e30);
    }
    opt_->step(lr);
    opt_->zero_grad();
    dp_->after_optimizer_step(opt_->params());
    ++step_;
    tokens_ += tokens_per_step;
    double mean_loss = dp_->mean(step_loss);
    loss_acc = mean_loss;
    if (r_.dist.check_every > 0 && step_ % r_.dist.check_every == 0) dp_->check_in_sync(opt_->params(), step_);
    double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    double tps = (step_ - start_step) * tokens_per_step / std::max(elapsed, 1e-9);
    json m = {{"step", step_}, {"loss", mean_loss}, {"lr", lr}, {"grad_norm", gnorm}, {"tokens", tokens_},
              {"tokens_per_s", tps}, {"synthetic_rows", synth}};
    if (r_.run.activation_checkpointing)  // proof the recompute path ran: layers x micro-batches
      m["recomputed_layers"] = model::checkpointed_layer_recomputes() - recomputes_before;
    bool eval_now = r_.run.eval_every > 0 && (step_ % r_.run.eval_every == 0 || step_ == r_.optim.steps);
    if (eval_now) {
      last_val_loss_ = validate();
      if (!std::isnan(last_val_loss_)) {
        m["val_loss"] = last_val_loss_;
        m["val_ppl"] = std::exp(last_val_loss_);
        log::info("step {}: val loss {:.4f} (ppl {:.2f})", step_, last_val_loss_, std::exp(last_val_loss_));
      }
    }
    if (step_ % std::max<int64_t>(1, r_.run.log_every) == 0 || eval_now || step_ == r_.optim.steps) log_metrics(m);
    bar.update(step_, fmt::format("loss {:.4f} lr {:.2e} {} tok/s", mean_loss, lr, human_count(tps)));
    if ((r_.run.save_every > 0 && step_ % r_.run.save_every == 0) || step_ == r_.optim.steps) save(step_);
  }
  bar.finish();
  res.steps = step_;
  res.tokens = tokens_;
  res.final_loss = loss_acc;
  res.final_val_loss = last_val_loss_;
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  res.tokens_per_second = (step_ - start_step) * tokens_per_step / std::max(res.seconds, 1e-9);
  if (auto c = ckpt_->latest_valid()) res.last_checkpoint = *c;
  return res;
}

}  // namespace hyla::train
