// Runs one distillation stage (distill_recipe.h) on a student against a teacher: the
// training loop `hyla pretrain` uses (gradient accumulation, clipping, AdamW with
// per-group LRs, LR schedule, bf16 autocast on GPU, data parallel through
// train::DataParallel), with the stage's loss (stage_objective.h).
//
// With a directory, a stage is resumable exactly like pretraining: atomic checkpoints
// in <dir>/checkpoints (weights, AdamW state, CPU RNG, data position), metrics in
// <dir>/metrics.jsonl truncated to the resumed step, and when it ends the student as an
// HF checkpoint in <dir> with <dir>/stage.json written last (the stage is then done).
// Without one (`run_probe_stage`, probe_student.h), nothing touches the disk.
#pragma once
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>

#include "hyla/data/token_shards.h"
#include "hyla/distill/distill_recipe.h"
#include "hyla/model/decoder.h"
#include "hyla/train/parallel.h"

namespace hyla::distill {

struct StageEnv {
  model::CausalLM teacher{nullptr};  // frozen, on `device`
  std::shared_ptr<const data::TokenDataset> train_data;
  torch::Device device{torch::kCPU};
  bool autocast = false;          // bf16 autocast (CUDA)
  uint64_t seed = 0;              // data order: the same seed gives the same batches
  std::shared_ptr<train::DataParallel> dp;  // null: one process
  train::RunConfig run;           // save_dtype (final only), keep_checkpoints, shard_mb
  std::filesystem::path tokenizer;          // copied into checkpoints when set
  std::filesystem::path teacher_cache_root;  // default parent of top-k caches
  bool progress = true;
};

struct StageResult {
  int64_t steps = 0, tokens = 0;
  double final_loss = 0;  // the last step's loss
  double mean_loss = 0;   // mean over the steps this call ran (all of them when not resumed)
  double seconds = 0, tokens_per_second = 0;
  nlohmann::json summary = nlohmann::json::object();  // stage.json
};

// Restricts which layers' mixers train (chained fine-tuning); empty: as the stage says.
struct LayerRestriction {
  std::vector<int64_t> train_layers, earlier_layers, diversity_layers;
  double earlier_scale = 0;
};

// Runs `st` on `student` (modified in place). `dir` empty: in memory.
StageResult run_stage(model::CausalLM& student, const StageConfig& st, const StageEnv& env,
                      const std::filesystem::path& dir, const LayerRestriction& layers = {});

// Writes the student as an HF checkpoint (float32) into `dir`, the tokenizer beside it,
// then `dir`/stage.json = summary (last, so that its presence means complete).
void write_stage_result(model::CausalLM& student, const std::filesystem::path& dir, const StageEnv& env,
                        const nlohmann::json& summary);

// True when <dir>/stage.json exists (the stage finished and its student is in <dir>).
bool stage_done(const std::filesystem::path& dir);


}  // namespace hyla::distill
