// `hyla select TEACHER --method M (--share 0.25 | --keep K) --out sel.json [--plot sel.svg]`:
// rank the teacher's layers by how much they are worth keeping as softmax attention
// (docs/select.md). Probes read training text (--text), never the evaluation text.
#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "command.h"
#include "common.h"
#include "hyla/distill/select_layers.h"
#include "hyla/eval/perplexity.h"
#include "hyla/io/atomic_file.h"
#include "hyla/util/error.h"

namespace hyla::cli {
namespace {

struct SelectArgs {
  ModelArgs model;
  distill::SelectOptions opt;
  std::string text, out, plot, from;
  int64_t max_tokens = 16384;
  int64_t mqar_len = 256, mqar_kv = 16, mqar_vocab = 4096, mqar_offset = 4096;
};

bool needs_text(const std::string& method) { return method != "uniform" && method != "bypass-recall"; }

void print_selection(const distill::Selection& s, const std::string& out) {
  std::printf("%-6s %14s  %s\n", "layer", "score", "rank");
  for (int64_t l = 0; l < s.num_layers; ++l) {
    int64_t rank = std::find(s.ranking.begin(), s.ranking.end(), l) - s.ranking.begin();
    bool kept = std::find(s.attention_layers.begin(), s.attention_layers.end(), l) != s.attention_layers.end();
    std::printf("%-6lld %14.6g  %lld%s\n", (long long)l, s.scores[l], (long long)rank + 1, kept ? "  attention" : "");
  }
  std::string layers;
  for (auto l : s.attention_layers) layers += (layers.empty() ? "" : ",") + std::to_string(l);
  std::printf("%s keeps %zu of %lld layers as attention: %s%s\n", s.method.c_str(), s.attention_layers.size(),
              (long long)s.num_layers, layers.c_str(), out.empty() ? "" : ("  -> " + out).c_str());
}

// --from: the same ranking cut at another K (selections are nested), no probes rerun.
int recut_selection(const SelectArgs& a) {
  auto cfg = model::ModelConfig::load(a.model.path);
  auto s = distill::load_selection(a.from, cfg);
  int64_t keep = a.opt.keep > 0 ? a.opt.keep : distill::keep_count(a.opt.share, s.num_layers, "--share");
  HYLA_CHECK(keep <= s.num_layers, "--keep {}: the teacher has {} layers", keep, s.num_layers);
  s.attention_layers = distill::top_layers(s, keep);
  s.share = a.opt.keep > 0 ? double(keep) / double(s.num_layers) : a.opt.share;
  s.extra["recut_from"] = a.from;
  if (!a.out.empty()) distill::save_selection(s, a.out);
  if (!a.plot.empty()) io::write_text_atomic(a.plot, distill::selection_svg(s));
  print_selection(s, a.out);
  return 0;
}

int run_select(SelectArgs a) {
  if (!a.out.empty()) HYLA_CHECK(std::filesystem::path(a.out).extension() == ".json", "--out {}: expected a .json file name", a.out);
  if (!a.from.empty()) return recut_selection(a);
  const auto& methods = distill::selection_methods();
  if (std::find(methods.begin(), methods.end(), a.opt.method) == methods.end()) {
    std::string have;
    for (auto& m : methods) have += (have.empty() ? "" : ", ") + m;
    fail("--method {}: unknown (have: {})", a.opt.method, have);
  }
  if (a.opt.keep <= 0) distill::keep_count(a.opt.share, model::ModelConfig::load(a.model.path).num_hidden_layers,
                                           "--share");
  a.opt.mqar.seq_len = a.mqar_len;
  a.opt.mqar.num_kv_pairs = a.mqar_kv;
  a.opt.mqar.vocab_size = a.mqar_vocab;
  a.opt.mqar.token_offset = int32_t(a.mqar_offset);
  torch::Tensor calib;
  if (needs_text(a.opt.method)) {
    HYLA_CHECK(!a.text.empty(), "--method {} needs --text (training text to probe on, e.g. assets/text/train.txt)",
               a.opt.method);
    calib = eval::text_file_tokens(a.text, *a.model.tokenizer(), a.max_tokens, a.opt.ctx);
  }
  auto teacher = a.model.load();
  auto s = distill::select_layers(teacher, calib, a.opt);
  if (calib.defined()) s.extra["calibration_text"] = {{"file", a.text}, {"tokens", calib.size(0)}};
  s.extra["teacher"] = a.model.path;
  if (!a.out.empty()) distill::save_selection(s, a.out);
  if (!a.plot.empty()) io::write_text_atomic(a.plot, distill::selection_svg(s));
  print_selection(s, a.out);
  return 0;
}

Register reg("select", "rank layers to keep as attention (uniform, bypass-ppl, bypass-recall, entropy)",
             [](CLI::App& app) {
  auto a = std::make_shared<SelectArgs>();
  a->model.add(app);
  std::string methods;
  for (auto& m : distill::selection_methods()) methods += (methods.empty() ? "" : " | ") + m;
  app.add_option("--method", a->opt.method, methods)->capture_default_str();
  auto* share = app.add_option("--share", a->opt.share, "share of layers kept as attention (K rounded half up)")
                    ->capture_default_str();
  app.add_option("--keep", a->opt.keep, "number of attention layers (instead of --share)")->excludes(share);
  app.add_option("-o,--out", a->out, "selection JSON (the file a recipe's [student] selection names)");
  app.add_option("--plot", a->plot, "SVG bar plot of the scores");
  app.add_option("--from", a->from, "re-cut an existing selection of this teacher at --share/--keep (no probes)");
  app.add_option("--text", a->text, "training text to probe on (bypass-ppl, entropy)");
  app.add_option("--max-tokens", a->max_tokens, "tokens of --text used")->capture_default_str();
  app.add_option("--ctx", a->opt.ctx, "window length (perplexity probes; longest entropy prompt)")->capture_default_str();
  app.add_option("--batch", a->opt.batch, "windows per forward pass")->capture_default_str();
  app.add_option("--mqar-length", a->mqar_len, "bypass-recall: MQAR sequence length")->capture_default_str();
  app.add_option("--mqar-kv-pairs", a->mqar_kv)->capture_default_str();
  app.add_option("--mqar-vocab", a->mqar_vocab)->capture_default_str();
  app.add_option("--mqar-offset", a->mqar_offset)->capture_default_str();
  app.add_option("--mqar-samples", a->opt.mqar_samples)->capture_default_str();
  app.add_option("--direction", a->opt.direction, "entropy: high-keeps (DSLA-Serve) | low-keeps")->capture_default_str();
  app.add_option("--prompts", a->opt.prompts, "entropy: prompts of mixed length")->capture_default_str();
  app.add_option("--seed", a->opt.seed)->capture_default_str();
  return [=]() { return run_select(*a); };
});

}  // namespace
}  // namespace hyla::cli
