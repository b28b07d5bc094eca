// `hyla select TEACHER --method M (--share 0.25 | --keep K) --out sel.json [--plot sel.svg]`:
// rank the teacher's layers by how much they are worth keeping as softmax attention
// (docs/select.md). Probes read training text (--text), never the evaluation text.
#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "command.h"
#include "common.h"
#include "hyla/distill/distill_recipe.h"
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
  // ga-s2, kl-guided(-cheap), halo
  std::string init = "auto", gqa = "heads", conv_init = "identity", align_loss = "l2";
  int64_t calib_sequences = 4, calib_seq_len = 256, taylor_align_steps = 300;
  int64_t align_tokens = 16384, probe_tokens = 8192, train_seq_len = 128, train_batch = 8;
  double align_lr = 1e-3, probe_lr = 1e-3, probe_lr_rest = 1e-4;
};

bool trains_stage1(const std::string& m) { return m == "kl-guided" || m == "kl-guided-cheap" || m == "halo"; }

// The conversion and the stage tables of the probing methods, checked by the same code
// that checks a recipe's [[stage]] tables (errors name the flag's stage).
void probe_settings(SelectArgs& a) {
  auto& o = a.opt;
  auto& c = o.convert;
  c.init = a.init != "auto" ? a.init : o.method == "ga-s2" ? "zero-gate" : "transfer";
  c.gqa = distill::gqa_layout_from_name(a.gqa, "--gqa-layout");
  HYLA_CHECK(a.conv_init == "identity" || a.conv_init == "fla", "--conv-init must be identity or fla, got \"{}\"",
             a.conv_init);
  c.conv_identity = a.conv_init == "identity";
  c.seed = o.seed;
  c.taylor.calib_sequences = a.calib_sequences;
  c.taylor.calib_seq_len = a.calib_seq_len;
  c.taylor.align_steps = a.taylor_align_steps;
  c.taylor.progress = false;
  c.taylor = distill::TaylorOptions::from_json(c.taylor.to_json(), "--calib-*/--taylor-align-steps");
  const auto& inits = distill::init_names();
  if (std::find(inits.begin(), inits.end(), c.init) == inits.end()) {
    std::string have;
    for (auto& i : inits) have += (have.empty() ? "" : ", ") + i;
    fail("--init {}: unknown (have: {})", c.init, have);
  }
  if (!trains_stage1(o.method)) return;
  o.align = distill::stage_from_json({{"kind", "attention_align"}, {"name", "align"}, {"loss", a.align_loss},
                                      {"tokens", a.align_tokens}, {"seq_len", a.train_seq_len},
                                      {"batch_size", a.train_batch}, {"lr", a.align_lr}, {"min_lr", a.align_lr / 100},
                                      {"schedule", "cosine"}},
                                     "stage 1 (--align-*, --train-*)", 0);
  // The KL-guided probe (methods.md §5.2): everything trains, forward KL, constant LR,
  // the restored attention (and the mixers) at a higher LR than the rest.
  o.probe = distill::stage_from_json({{"kind", "kl"}, {"name", "probe"}, {"train", {"all"}},
                                      {"group_lr", {{"mixers", a.probe_lr}, {"attention", a.probe_lr}}},
                                      {"tokens", a.probe_tokens}, {"seq_len", a.train_seq_len},
                                      {"batch_size", a.train_batch}, {"lr", a.probe_lr_rest}, {"min_lr", 0.0},
                                      {"schedule", "constant"}},
                                     "probe (--probe-*, --train-*)", 1);
  if (o.cheap_probe_tokens <= 0) o.cheap_probe_tokens = std::max<int64_t>(1, a.probe_tokens / 8);
}

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
  HYLA_CHECK(!a.opt.compare_cheap || a.opt.method == "kl-guided", "--compare-cheap applies to --method kl-guided");
  probe_settings(a);
  if (!a.opt.save_stage1.empty()) {
    HYLA_CHECK(trains_stage1(a.opt.method), "--save-stage1 applies to kl-guided, kl-guided-cheap and halo");
    check_distinct_output(a.model.path, a.opt.save_stage1);
  }
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
  if (!a.opt.save_stage1.empty()) copy_tokenizer_files(a.model.path, a.opt.save_stage1);
  if (!a.out.empty()) distill::save_selection(s, a.out);
  if (!a.plot.empty()) io::write_text_atomic(a.plot, distill::selection_svg(s));
  print_selection(s, a.out);
  return 0;
}

Register reg("select", "rank layers to keep as attention (uniform, bypass-ppl, bypass-recall, entropy, ga-s2, "
             "kl-guided, kl-guided-cheap, halo)",
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
  app.add_option("--text", a->text, "training text to probe on (every method but uniform and bypass-recall)");
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
  app.add_option("--seed", a->opt.seed, "seed of MQAR samples, new mixer parameters and probe data order")
      ->capture_default_str();
  // ga-s2, kl-guided(-cheap), halo: how the converted layers are made.
  app.add_option("--mixer", a->opt.mixer, "ga-s2/kl-guided/halo: linear mixer of converted layers: gdn | dsla | hypenet")
      ->capture_default_str();
  app.add_option("--init", a->init, "conversion init: auto (ga-s2: zero-gate; kl-guided, halo: transfer) | transfer | "
                 "taylor | taylor-init | align-only | random-gate | zero-gate | random")->capture_default_str();
  app.add_option("--gqa-layout", a->gqa, "GQA k/v expansion: heads | rows")->capture_default_str();
  app.add_option("--conv-init", a->conv_init, "GDN short convs: identity | fla")->capture_default_str();
  app.add_option("--calib-sequences", a->calib_sequences, "taylor inits: calibration sequences")->capture_default_str();
  app.add_option("--calib-seq-len", a->calib_seq_len, "taylor inits: calibration length")->capture_default_str();
  app.add_option("--taylor-align-steps", a->taylor_align_steps, "taylor: per-layer alignment steps")
      ->capture_default_str();
  // Stage 1 and the probes (kl-guided, kl-guided-cheap, halo).
  app.add_option("--align-tokens", a->align_tokens, "stage 1: attention-alignment tokens")->capture_default_str();
  app.add_option("--align-lr", a->align_lr, "stage 1: peak LR (cosine to 1%)")->capture_default_str();
  app.add_option("--align-loss", a->align_loss, "stage 1: l2 | mse | nmse")->capture_default_str();
  app.add_option("--save-stage1", a->opt.save_stage1, "kl-guided/halo: write the aligned all-linear student there");
  app.add_option("--probe-tokens", a->probe_tokens, "kl-guided: tokens per probe")->capture_default_str();
  app.add_option("--probe-lr", a->probe_lr, "kl-guided probes: LR of attention and mixers (constant)")
      ->capture_default_str();
  app.add_option("--probe-lr-rest", a->probe_lr_rest, "kl-guided probes: LR of every other parameter")
      ->capture_default_str();
  app.add_option("--train-seq-len", a->train_seq_len, "stage 1 and probes: sequence length")->capture_default_str();
  app.add_option("--train-batch", a->train_batch, "stage 1 and probes: sequences per step")->capture_default_str();
  app.add_option("--cheap", a->opt.cheap, "kl-guided-cheap: remove (teacher with one layer replaced) | short-probe")
      ->capture_default_str();
  app.add_option("--cheap-probe-tokens", a->opt.cheap_probe_tokens, "short-probe: tokens per probe (default: "
                 "probe tokens / 8)");
  app.add_flag("--compare-cheap", a->opt.compare_cheap,
               "kl-guided: also rank with both cheap variants; report Spearman rho and top-K overlap");
  app.add_option("--halo-commonsense", a->opt.halo_commonsense, "halo: C proxy: kl (-KL to the teacher) | nll "
                 "(-ln ppl)")->capture_default_str();
  return [=]() { return run_select(*a); };
});

}  // namespace
}  // namespace hyla::cli
