// A distillation recipe (`hyla distill R.toml`, docs/distill.md): the teacher, how the
// student is made from it ([student], the conversion table of distill/convert.h), the
// training text, and a list of [[stage]]s run in order (pipeline.md §4–§5). Every key is
// checked before anything trains: an unknown key, a key that does not apply to its stage
// kind, or two keys that contradict each other stop the run with a message naming them.
#pragma once
#include <nlohmann/json.hpp>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "hyla/train/recipe.h"

namespace hyla::distill {

enum class StageKind { AttentionAlign, HiddenAlign, KL, CE, LongContext, Chained };
std::string stage_kind_name(StageKind k);

// Alignment losses (methods.md §1.3): "l2" is RADLADS' unsquared per-token norm / √d,
// "mse" HALO's mean square, "nmse" the MSE divided by the teacher's mean square.
enum class AlignLoss { L2, MSE, NMSE };
AlignLoss align_loss_from_name(const std::string& name, const std::string& where);

// Parameter groups a stage can train (param_groups.h says which tensor is in which).
inline const std::vector<std::string>& parameter_group_names() {
  static const std::vector<std::string> names = {"mixers", "attention", "mlp", "norms", "embeddings", "all"};
  return names;
}

struct StageConfig {
  std::string name;  // directory under out_dir
  StageKind kind = StageKind::CE;
  std::string loss = "ce";  // the objective: align | ce | kl (long_context: ce or kl)
  int64_t tokens = 0;       // training tokens; steps = ceil(tokens / tokens per step)
  int64_t seq_len = 256, batch_size = 8, grad_accum = 1;
  train::OptimConfig optim;                   // lr, min_lr, schedule, warmup_steps, ...; steps set at run time
  std::vector<std::string> train = {"all"};   // parameter groups that train
  std::map<std::string, double> group_lr;     // peak LR of a group (min_lr scales with it)
  // Alignment (attention_align, hidden_align; chained's optional term).
  AlignLoss align = AlignLoss::L2;
  std::string align_layers = "converted";  // hidden_align: converted | all
  // Logit distillation (kl, long_context with loss = "kl", chained).
  double temperature = 1.0;
  int64_t top_k = 0;           // > 0: KL against the teacher's top-k (renormalised), cached on disk
  std::string teacher_cache;   // where top-k logits are cached ("" = out_dir/teacher-cache/<stage>)
  double ce_weight = 0.0;      // adds ce_weight · CE to a KL objective
  // Chained fine-tuning (dsla.md, methods.md §4.5).
  std::vector<int64_t> order;     // layers in conversion order
  std::string order_from;         // or: a selection file (its ranking, most sensitive last)
  double diversity_weight = 0.0;  // λ · mean cos-sim(exp(gk1), exp(gk2)) for DSLA layers
  double earlier_lr_scale = 0.1;  // LR of layers converted in earlier links (0 = frozen)
  // Logging and checkpoints (default: [run]'s).
  int64_t log_every = 0, save_every = 0;

  // ceil(tokens / tokens a step); batch_size is per process, so N processes at batch
  // B/N take as many steps as one at B (and the same windows: batch_sampler.h).
  int64_t steps(int64_t world_size) const;
  int64_t tokens_per_step(int64_t world_size) const { return seq_len * batch_size * grad_accum * world_size; }
};

struct DataSource {
  std::string dir;   // prepared shards (hyla data prepare)
  std::string text;  // or raw text, tokenised with the teacher's tokenizer
  double val_fraction = 0.0;  // raw text: share of documents held out (0: none)
};

struct DistillRecipe {
  std::filesystem::path path;
  std::string teacher;                                  // [teacher] path
  nlohmann::json student = nlohmann::json::object();   // [student] as written
  DataSource data;
  train::RunConfig run;
  train::DistConfig dist;
  std::vector<StageConfig> stages;
  nlohmann::json raw;

  static DistillRecipe load(const std::filesystem::path& toml_file);
  static DistillRecipe from_json(const nlohmann::json& j, const std::string& label);
  // A train::Recipe carrying [run]/[dist] for the data-parallel launcher.
  train::Recipe as_train_recipe() const;
};

// One [[stage]] table → StageConfig; `label` names it in errors ("R.toml [[stage]] 2").
StageConfig stage_from_json(const nlohmann::json& t, const std::string& label, int64_t index);

}  // namespace hyla::distill
