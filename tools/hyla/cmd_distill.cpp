// `hyla distill R.toml`: convert a teacher into a hybrid student and distil it through the
// recipe's stages (docs/distill.md). Rerunning the same command resumes a killed run
// exactly; under torchrun it runs data parallel. Writes out_dir/curves.svg (every
// stage's loss against tokens) and out_dir/final.
#include <cstdio>
#include <fstream>

#include "command.h"
#include "common.h"
#include "hyla/dist/launch.h"
#include "hyla/distill/distill_run.h"
#include "hyla/eval/svg_plot.h"
#include "hyla/io/atomic_file.h"
#include "hyla/util/error.h"
#include "hyla/util/log.h"

namespace hyla::cli {
namespace {
namespace fs = std::filesystem;

struct DistillArgs {
  std::string recipe, out_dir, device;
  std::vector<std::string> overrides;
  bool check = false;
};

// --set section.key=value (value parsed as JSON when it parses); stage.N.key for [[stage]] N.
void apply_override(nlohmann::json& raw, const std::string& o) {
  auto eq = o.find('=');
  HYLA_CHECK(eq != std::string::npos && o.find('.') < eq, "--set {}: expected section.key=value", o);
  std::vector<std::string> path;
  std::string key = o.substr(0, eq);
  for (size_t a = 0, b; a <= key.size(); a = b + 1) {
    b = key.find('.', a);
    if (b == std::string::npos) b = key.size();
    path.push_back(key.substr(a, b - a));
  }
  nlohmann::json v;
  try {
    v = nlohmann::json::parse(o.substr(eq + 1));
  } catch (...) {
    v = o.substr(eq + 1);
  }
  nlohmann::json* node = &raw;
  for (size_t i = 0; i + 1 < path.size(); ++i) {
    if (node->is_array()) {
      size_t n = std::stoul(path[i]);
      HYLA_CHECK(n >= 1 && n <= node->size(), "--set {}: there is no [[stage]] {}", o, path[i]);
      node = &(*node)[n - 1];
    } else {
      node = &(*node)[path[i]];
    }
  }
  (*node)[path.back()] = v;
}

// One series per stage (chained: per link), x = tokens since the run began.
void write_curves(const distill::DistillRecipe& r, const fs::path& out) {
  std::vector<eval::Series> series;
  double offset = 0;
  for (auto& st : r.stages) {
    std::vector<fs::path> files;
    fs::path dir = fs::path(r.run.out_dir) / st.name;
    if (fs::exists(dir / "metrics.jsonl")) files.push_back(dir / "metrics.jsonl");
    if (fs::is_directory(dir))
      for (auto& e : fs::directory_iterator(dir))
        if (e.path().filename().string().rfind("link-", 0) == 0 && fs::exists(e.path() / "metrics.jsonl"))
          files.push_back(e.path() / "metrics.jsonl");
    std::sort(files.begin(), files.end());
    for (auto& f : files) {
      eval::Series s{f.parent_path() == dir ? st.name : st.name + "/" + f.parent_path().filename().string(), {}};
      std::ifstream in(f);
      double last = 0;
      for (std::string line; std::getline(in, line);) {
        try {
          auto j = nlohmann::json::parse(line);
          last = j.at("tokens").get<double>();
          s.points.emplace_back(offset + last, j.at("loss").get<double>());
        } catch (const nlohmann::json::exception&) {
        }
      }
      offset += last;
      if (!s.points.empty()) series.push_back(std::move(s));
    }
  }
  if (series.empty()) return;
  eval::PlotOptions o;
  o.title = "hyla distill: loss per stage";
  o.x_label = "tokens";
  o.y_label = "stage loss";
  o.log_y = true;
  io::write_text_atomic(out, eval::render_svg(series, o));
}

int run_distill(const DistillArgs& a) {
  auto raw = train::toml_file_to_json(a.recipe);
  for (auto& o : a.overrides) apply_override(raw, o);
  if (!a.out_dir.empty()) raw["run"]["out_dir"] = a.out_dir;
  if (!a.device.empty()) raw["run"]["device"] = a.device;
  auto recipe = distill::DistillRecipe::from_json(raw, a.recipe);
  recipe.path = a.recipe;
  auto dp = dist::data_parallel_from_env(recipe.as_train_recipe());
  if (dp->rank() != 0) log::set_level(log::Level::Warn);
  distill::DistillRun run(recipe, dp);
  run.prepare();
  if (a.check) {
    if (dp->rank() == 0) std::printf("%s: recipe, teacher, student and data check out\n", a.recipe.c_str());
    return 0;
  }
  auto results = run.run();
  if (dp->rank() != 0) return 0;
  copy_tokenizer_files(recipe.teacher, run.final_dir().string());
  fs::path svg = fs::path(recipe.run.out_dir) / "curves.svg";
  write_curves(recipe, svg);
  for (auto& r : results)
    std::printf("%-24s %6lld steps %9lld tokens  final loss %.4f  %.0f tokens/s\n",
                r.summary.value("stage", std::string("?")).c_str(), (long long)r.steps, (long long)r.tokens,
                r.final_loss, r.tokens_per_second);
  std::printf("done: student in %s; curves in %s\n", run.final_dir().string().c_str(), svg.string().c_str());
  return 0;
}

Register reg("distill", "convert a teacher to a hybrid and distil it through a recipe's stages (resumable)",
             [](CLI::App& app) {
               auto a = std::make_shared<DistillArgs>();
               app.add_option("recipe", a->recipe, "distillation recipe, e.g. recipes/distill-teacher-tiny.toml")
                   ->required();
               app.add_option("--set", a->overrides,
                              "override a recipe value: section.key=value or stage.N.key=value (repeatable)");
               app.add_option("--out-dir", a->out_dir, "override run.out_dir");
               app.add_option("--device", a->device, "override run.device");
               app.add_flag("--check", a->check, "check the recipe, teacher, student and data, then stop");
               return [=]() { return run_distill(*a); };
             });

}  // namespace
}  // namespace hyla::cli
