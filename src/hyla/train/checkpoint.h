// Training checkpoints: everything needed to continue a run exactly.
//
//   <out>/checkpoints/step-00000200/
//       config.json, model.safetensors        HF layout: transformers loads it as is
//       tokenizer.json                        (when the run has one)
//       optimizer.safetensors                 exp_avg.* / exp_avg_sq.* by parameter name,
//                                             rng.cpu (and rng.cuda) generator states
//       trainer_state.json                    step, data position, tokens seen, sizes and
//                                             sha256 of every file above, recipe
//   <out>/checkpoints/latest                  name of the newest complete checkpoint
//
// A checkpoint is written into a temporary directory and renamed into place, then
// `latest` is replaced atomically: a crash at any moment leaves the previous one
// usable. On resume, a checkpoint whose files do not match trainer_state.json is
// refused with a message and the one before it is used.
#pragma once
#include <torch/torch.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace hyla::train {

struct CheckpointPayload {
  int64_t step = 0;
  nlohmann::json state;  // trainer state: data position, tokens, world size, ...
  std::vector<std::pair<std::string, torch::Tensor>> model;      // HF names
  std::vector<std::pair<std::string, torch::Tensor>> optimizer;  // incl. rng.*
  nlohmann::json config;                                         // config.json
  std::filesystem::path tokenizer;                               // copied if set
};

class Checkpointer {
 public:
  explicit Checkpointer(std::filesystem::path out_dir, int64_t keep = 3);
  // Writes step-<step>/ atomically and prunes old ones beyond `keep`. Returns its path.
  std::filesystem::path save(const CheckpointPayload& p, const std::string& save_dtype = "float32",
                             uint64_t shard_bytes = 2ull << 30);
  // The newest checkpoint that verifies, falling back past broken ones (logged).
  std::optional<std::filesystem::path> latest_valid() const;
  // Verifies sizes + sha256 of every file; returns an empty string when good, else why.
  static std::string verify(const std::filesystem::path& ckpt);
  static nlohmann::json read_state(const std::filesystem::path& ckpt);
  std::filesystem::path dir() const { return dir_; }

 private:
  std::vector<std::filesystem::path> list() const;  // newest first
  std::filesystem::path dir_;
  int64_t keep_;
};

std::string checkpoint_name(int64_t step);

}  // namespace hyla::train
