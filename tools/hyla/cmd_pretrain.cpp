// `hyla pretrain RECIPE.toml`: train a model from scratch (or continue one) as the
// recipe says; resumes automatically from the newest valid checkpoint in out_dir.
// Under torchrun (RANK/WORLD_SIZE set) it runs data-parallel over c10d.
#include <cstdio>

#include "command.h"
#include "hyla/dist/launch.h"
#include "hyla/train/trainer.h"
#include "hyla/util/error.h"
#include "hyla/util/log.h"

namespace hyla::cli {
namespace {

struct PretrainArgs {
  std::string recipe;
  std::vector<std::string> overrides;
  int64_t steps = 0;
  std::string out_dir, device;
};

int run_pretrain(const PretrainArgs& a) {
  auto raw = train::toml_file_to_json(a.recipe);
  // --set section.key=value overrides, values parsed as JSON when they parse.
  for (auto& o : a.overrides) {
    auto eq = o.find('='), dot = o.find('.');
    HYLA_CHECK(eq != std::string::npos && dot != std::string::npos && dot < eq,
               "--set {}: expected section.key=value", o);
    std::string sec = o.substr(0, dot), key = o.substr(dot + 1, eq - dot - 1), val = o.substr(eq + 1);
    nlohmann::json v;
    try {
      v = nlohmann::json::parse(val);
    } catch (...) {
      v = val;
    }
    raw[sec][key] = v;
  }
  if (a.steps > 0) raw["optim"]["steps"] = a.steps;
  if (!a.out_dir.empty()) raw["run"]["out_dir"] = a.out_dir;
  if (!a.device.empty()) raw["run"]["device"] = a.device;
  auto recipe = train::Recipe::from_json(raw, a.recipe);
  recipe.path = a.recipe;
  auto dp = dist::data_parallel_from_env(recipe);
  if (dp->rank() != 0) log::set_level(log::Level::Warn);
  train::Trainer trainer(recipe, dp);
  auto r = trainer.run();
  if (dp->rank() == 0)
    std::printf("done: %lld steps, %lld tokens, loss %.4f, val loss %.4f, %.0f tokens/s; checkpoint %s\n",
                (long long)r.steps, (long long)r.tokens, r.final_loss, r.final_val_loss, r.tokens_per_second,
                r.last_checkpoint.string().c_str());
  return 0;
}

Register reg("pretrain", "train a model from a recipe (TOML); resumes from the last checkpoint", [](CLI::App& app) {
  auto a = std::make_shared<PretrainArgs>();
  app.add_option("recipe", a->recipe, "recipe file, e.g. recipes/teacher-tiny.toml")->required();
  app.add_option("--set", a->overrides, "override a recipe value: section.key=value (repeatable)");
  app.add_option("--steps", a->steps, "override optim.steps");
  app.add_option("--out-dir", a->out_dir, "override run.out_dir");
  app.add_option("--device", a->device, "override run.device");
  return [=]() { return run_pretrain(*a); };
});

}  // namespace
}  // namespace hyla::cli
