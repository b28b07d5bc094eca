// The training loop `hyla pretrain` runs (and distillation stages reuse): gradient
// accumulation, bf16 autocast on GPU, clipping, AdamW + schedule, periodic validation,
// metrics as JSONL, a progress bar, atomic checkpoints and exact resume.
#pragma once
#include <functional>
#include <memory>

#include "hyla/data/batch_sampler.h"
#include "hyla/model/decoder.h"
#include "hyla/train/adamw.h"
#include "hyla/train/checkpoint.h"
#include "hyla/train/parallel.h"
#include "hyla/train/recipe.h"

namespace hyla::train {

struct TrainResult {
  int64_t steps = 0, tokens = 0;
  double final_loss = 0, final_val_loss = 0, seconds = 0, tokens_per_second = 0;
  std::filesystem::path last_checkpoint;
};

class Trainer {
 public:
  // `dp` may be null (single process).
  Trainer(Recipe recipe, std::shared_ptr<DataParallel> dp = nullptr);
  // Builds (or resumes) and trains to recipe.optim.steps.
  TrainResult run();
  // Loss of one batch: masked next-token cross-entropy (mean over scored tokens).
  static torch::Tensor loss_fn(model::CausalLM& m, const data::TokenBatch& b, torch::Device dev,
                               bool checkpoint_layers = false);

 private:
  void setup();
  bool try_resume();
  void save(int64_t step);
  double validate();
  void log_metrics(const nlohmann::json& j);
  void truncate_metrics_after(int64_t step);

  Recipe r_;
  std::shared_ptr<DataParallel> dp_;
  torch::Device device_{torch::kCPU};
  bool autocast_ = false;
  model::CausalLM model_{nullptr};
  std::unique_ptr<AdamW> opt_;
  std::unique_ptr<data::BatchSampler> train_;
  std::shared_ptr<const data::TokenDataset> val_data_;
  std::unique_ptr<Checkpointer> ckpt_;
  std::filesystem::path tokenizer_path_;
  int64_t step_ = 0, tokens_ = 0;
  double last_val_loss_ = 0;
};

}  // namespace hyla::train
