// A training recipe: one TOML file that says everything about a run (model, data,
// optimizer, schedule, evaluation, checkpoints, parallelism). `hyla pretrain` reads
// it; distillation stages reuse the same sections.
#pragma once
#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>

namespace hyla::train {

struct OptimConfig {
  double lr = 3e-4, min_lr = 3e-5;
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8;
  double weight_decay = 0.1;
  double grad_clip = 1.0;  // 0 = off
  int64_t warmup_steps = 100;
  int64_t steps = 1000;
  std::string schedule = "cosine";  // cosine | constant | linear
};

struct DataConfig {
  std::string dir;        // prepared shards (hyla data prepare)
  std::string tokenizer;  // tokenizer.json copied into checkpoints
  int64_t seq_len = 256;
  int64_t batch_size = 8;  // per process, per micro-step
  int64_t grad_accum = 1;
  double synthetic_share = 0.0;
  nlohmann::json synthetic = nlohmann::json::object();  // generator settings
};

struct RunConfig {
  std::string name = "run";
  std::string out_dir = "runs/run";
  uint64_t seed = 1234;
  std::string device = "auto";
  std::string dtype = "auto";  // auto: bf16 autocast on GPU, float32 on CPU
  bool activation_checkpointing = false;
  int64_t log_every = 10;
  int64_t eval_every = 200, eval_batches = 20;
  int64_t save_every = 200, keep_checkpoints = 3;
  std::string save_dtype = "float32";  // weights dtype of checkpoints
  int64_t shard_mb = 2048;             // safetensors shard size of checkpoint weights
};

struct DistConfig {
  bool zero1 = false;             // shard AdamW state across ranks
  int64_t bucket_mb = 25;         // gradient all-reduce bucket size
  int64_t check_every = 100;      // parameter checksum across ranks
  int64_t timeout_s = 120;        // collective timeout
};

struct Recipe {
  std::filesystem::path path;
  nlohmann::json model;  // an HF config.json object (see model/config.h), or {"init_from": dir}
  RunConfig run;
  DataConfig data;
  OptimConfig optim;
  DistConfig dist;
  nlohmann::json raw;  // the whole file as JSON, stored in checkpoints

  static Recipe load(const std::filesystem::path& toml_file);
  static Recipe from_json(const nlohmann::json& j, const std::string& label);
};

// TOML -> JSON (tables, arrays, strings, numbers, booleans), for configs and storage.
nlohmann::json toml_file_to_json(const std::filesystem::path& file);

}  // namespace hyla::train
