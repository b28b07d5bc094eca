// `hyla convert TEACHER --out DIR`: a hybrid student whose linear mixers start from the
// teacher's attention (pipeline.md §2) and, with --init taylor, Taylor-Calibrate (§3).
// Layers are chosen with `hyla hybrid`'s flags or a recipe's [student] table.
#include <algorithm>
#include <cstdio>

#include "command.h"
#include "common.h"
#include "hyla/distill/calib_text.h"
#include "hyla/distill/convert.h"
#include "hyla/distill/student_spec.h"
#include "hyla/distill/taylor_calibrate.h"
#include "hyla/io/atomic_file.h"
#include "hyla/model/mixers/registry.h"
#include "hyla/train/recipe.h"
#include "hyla/util/error.h"
#include "layer_choice.h"

namespace hyla::cli {
namespace {
namespace fs = std::filesystem;

struct ConvertArgs {
  std::string teacher, out, recipe, calib_text, dtype = "auto", device = "cpu";
  LayerChoiceArgs layers;
  std::string init = "transfer", gqa = "heads", conv_init = "identity";
  int64_t calib_sequences = -1, calib_seq_len = -1, align_steps = -1;
  bool beta_bias = false, ridge_v = false, no_progress = false;
  std::string decay_fit;
  uint64_t seed = 0;
  CLI::App* app = nullptr;
  bool given(const char* flag) const { return app->count(flag) > 0; }
};

// The options from a recipe's [student] (and [teacher] path), or from the flags.
distill::ConvertOptions options_from(ConvertArgs& a, const model::ModelConfig& tc, const nlohmann::json& recipe) {
  distill::ConvertOptions o;
  if (!recipe.is_null()) {
    for (const char* f : {"--init", "--gqa-layout", "--conv-init", "--seed"})
      HYLA_CHECK(!a.given(f), "{}: give {} in the recipe's [student] table, not on the command line", a.recipe, f);
    HYLA_CHECK(!a.layers.any_given(), "{}: the recipe chooses the layers; drop the layer-choice flags", a.recipe);
    HYLA_CHECK(recipe.contains("student"), "{}: missing [student] table", a.recipe);
    o = distill::ConvertOptions::from_json(recipe["student"], tc, a.recipe);
    // `selection = "sel.json"` (a hyla select result, maybe with attention_share): the same
    // resolution `hyla distill` applies, which refuses a selection made for another teacher.
    distill::resolve_selection(o, recipe["student"], tc, a.recipe + " [student]");
  } else {
    a.layers.apply(tc, o.hybrid);
    o.init = a.init;
    o.gqa = distill::gqa_layout_from_name(a.gqa, "--gqa-layout");
    HYLA_CHECK(a.conv_init == "identity" || a.conv_init == "fla",
               "--conv-init must be identity or fla, got \"{}\"", a.conv_init);
    o.conv_identity = a.conv_init == "identity";
    o.seed = a.seed;
  }
  auto& t = o.taylor;
  if (a.calib_sequences > 0) t.calib_sequences = a.calib_sequences;
  if (a.calib_seq_len > 0) t.calib_seq_len = a.calib_seq_len;
  if (a.align_steps >= 0) t.align_steps = a.align_steps;
  if (a.beta_bias) t.beta_bias = true;
  if (a.ridge_v) t.ridge_v = true;
  if (!a.decay_fit.empty()) t.decay_fit = a.decay_fit;
  if (a.no_progress) t.progress = false;
  t = distill::TaylorOptions::from_json(t.to_json(), "taylor options");  // one place checks ranges
  o.validate(tc);
  return o;
}

int run_convert(ConvertArgs& a) {
  nlohmann::json recipe;
  if (!a.recipe.empty()) {
    recipe = train::toml_file_to_json(a.recipe);
    if (a.teacher.empty() && recipe.contains("teacher") && recipe["teacher"].contains("path"))
      a.teacher = recipe["teacher"]["path"].get<std::string>();
  }
  HYLA_CHECK(!a.teacher.empty(), "give the teacher directory (or [teacher] path in the recipe)");
  HYLA_CHECK(!a.out.empty(), "give --out DIR");
  check_distinct_output(a.teacher, a.out);
  auto tc = model::ModelConfig::load(a.teacher);
  auto opt = options_from(a, tc, recipe);
  auto sc = distill::student_config(tc, opt);  // checks the mixers' head configs before any work
  torch::Tensor calib;
  if (opt.needs_calibration()) {
    HYLA_CHECK(!a.calib_text.empty(),
               "--init {} needs --calib-text FILE (training text, never the evaluation text)", opt.init);
    auto tok = io::Tokenizer::load(fs::path(a.teacher) / "tokenizer.json");
    calib = distill::calibration_tokens(*tok, a.calib_text, opt.taylor.calib_sequences, opt.taylor.calib_seq_len,
                                        a.teacher);
  }
  auto dtype = model::dtype_from_name(a.dtype == "auto" ? tc.torch_dtype : a.dtype);
  ModelArgs dev_args;  // --device parsing and checks shared with the other commands
  dev_args.device = a.device;
  auto teacher = model::load_causal_lm(a.teacher, dev_args.torch_device(), torch::kFloat32);
  distill::CalibrationReport report;
  auto student = distill::convert_teacher(teacher, opt, calib, &report);
  model::save_causal_lm(student, a.out, 2ull << 30, dtype);
  copy_tokenizer_files(a.teacher, a.out);
  // What was done, for provenance and for the tests' oracles (docs/convert.md).
  nlohmann::json info = {{"teacher", a.teacher}, {"init", opt.init}, {"gqa_layout", distill::gqa_layout_name(opt.gqa)},
                         {"conv_identity", opt.conv_identity}, {"seed", opt.seed}};
  if (!recipe.is_null() && recipe["student"].contains("selection")) info["selection"] = recipe["student"]["selection"];
  if (opt.needs_calibration()) {
    info["calib_text"] = a.calib_text;
    info["taylor"] = opt.taylor.to_json();
    info["calibration"] = report.to_json();
    std::vector<int64_t> ids(calib.data_ptr<int64_t>(), calib.data_ptr<int64_t>() + calib.numel());
    info["calibration"]["ids"] = ids;
  }
  io::write_text_atomic(fs::path(a.out) / "convert.json", info.dump(1) + "\n");
  std::string kinds = layer_kinds_string(sc);
  int64_t n_attn = std::count(kinds.begin(), kinds.end(), 'A');
  std::printf("wrote %s: %lld layers, %lld attention, %lld linear  [%s]  init %s, GQA layout %s, conv %s\n",
              a.out.c_str(), (long long)sc.num_hidden_layers, (long long)n_attn,
              (long long)(sc.num_hidden_layers - n_attn), kinds.c_str(), opt.init.c_str(),
              distill::gqa_layout_name(opt.gqa).c_str(), opt.conv_identity ? "identity" : "fla init");
  return 0;
}

Register reg("convert", "convert a teacher into a hybrid: transfer attention weights into linear mixers and initialise them",
             [](CLI::App& app) {
               auto a = std::make_shared<ConvertArgs>();
               a->app = &app;
               app.add_option("teacher", a->teacher, "teacher model directory (or [teacher] path of --recipe)");
               app.add_option("-o,--out", a->out, "output directory");
               a->layers.add(app);
               app.add_option("--init", a->init,
                              "transfer | taylor | taylor-init | align-only | random-gate | zero-gate | random")
                   ->capture_default_str();
               app.add_option("--gqa-layout", a->gqa, "GQA k/v expansion: heads (repeat whole heads) | rows "
                              "(repeat each weight row, the published layout)")->capture_default_str();
               app.add_option("--conv-init", a->conv_init, "GDN short convs: identity | fla (random)")
                   ->capture_default_str();
               app.add_option("--calib-text", a->calib_text, "training text for Taylor-Calibrate (never eval text)");
               app.add_option("--calib-sequences", a->calib_sequences, "calibration sequences (default 4)");
               app.add_option("--calib-seq-len", a->calib_seq_len, "calibration sequence length (default 256)");
               app.add_option("--align-steps", a->align_steps, "per-layer alignment steps (default 300)");
               app.add_flag("--beta-bias", a->beta_bias, "§3.9 (i): a real b_proj bias set to the target β logit");
               app.add_option("--decay-fit", a->decay_fit, "§3.9 (ii): half_life (published) | log_mass");
               app.add_flag("--ridge-v", a->ridge_v, "§3.9 (iii): ridge-fit W_v instead of a per-head scale");
               app.add_flag("--no-progress", a->no_progress, "no progress bar during alignment");
               app.add_option("--recipe", a->recipe, "recipe TOML whose [student] table sets all of the above");
               app.add_option("--seed", a->seed, "seed for the new parameters' init")->capture_default_str();
               app.add_option("--dtype", a->dtype, "saved dtype: auto (the teacher's) | float32 | bfloat16")
                   ->capture_default_str();
               app.add_option("--device", a->device, "where Taylor-Calibrate runs (float32): cpu | cuda | cuda:N | auto")
                   ->capture_default_str();
               return [=]() { return run_convert(*a); };
             });

}  // namespace
}  // namespace hyla::cli
