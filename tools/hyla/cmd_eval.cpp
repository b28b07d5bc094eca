// `hyla eval recall|ppl|kl|all MODEL`: recall accuracy (MQAR, passkey, NIAH), perplexity,
// mean KL to a teacher, or all of these plus decode-cache memory as one JSON file per
// model for `hyla report` (docs/eval.md).
#include <cstdio>
#include <filesystem>
#include <optional>

#include "command.h"
#include "common.h"
#include "hyla/eval/kl.h"
#include "hyla/eval/model_eval.h"
#include "hyla/eval/needle.h"
#include "hyla/eval/perplexity.h"
#include "hyla/eval/recall.h"
#include "hyla/io/atomic_file.h"
#include "hyla/util/error.h"

namespace hyla::cli {
namespace {

struct RecallArgs {
  ModelArgs model;
  std::string task = "mqar";
  int64_t samples = 100, length = 512, kv_pairs = 16, mqar_vocab = 4096, mqar_offset = 4096, new_tokens = 32;
  uint64_t seed = 12345;
};

int run_recall(const RecallArgs& a) {
  auto m = a.model.load();
  eval::RecallResult r;
  nlohmann::json extra = nlohmann::json::object();
  if (a.task == "mqar") {
    data::MqarConfig c;
    c.seq_len = a.length;
    c.num_kv_pairs = a.kv_pairs;
    c.vocab_size = a.mqar_vocab;
    c.token_offset = int32_t(a.mqar_offset);
    data::validate(c);
    r = eval::eval_mqar(m, c, a.samples, a.seed);
    extra["kv_pairs"] = a.kv_pairs;
  } else if (a.task == "passkey") {
    data::PasskeyConfig c;
    c.length_tokens = a.length;
    r = eval::eval_passkey(m, *a.model.tokenizer(), c, a.samples, a.seed);
  } else if (a.task == "niah") {
    data::NiahConfig c;
    c.length_tokens = a.length;
    c.reserve_tokens = a.new_tokens;
    r = eval::eval_niah(m, *a.model.tokenizer(), c, a.samples, a.seed, a.new_tokens);
    extra["new_tokens"] = a.new_tokens;
  } else {
    fail("--task {}: unknown (have: mqar, passkey, niah)", a.task);
  }
  auto j = r.to_json();
  j["length"] = a.length;
  j.update(extra);
  std::printf("%s\n", j.dump().c_str());
  return 0;
}

struct TextArgs {
  ModelArgs model;
  std::string file, teacher;
  int64_t ctx = 512, batch = 4, max_tokens = 0;
};

int run_text(const TextArgs& a, bool kl) {
  auto tok = a.model.tokenizer();
  auto ids = eval::text_file_tokens(a.file, *tok, a.max_tokens);
  auto m = a.model.load();
  nlohmann::json j;
  if (kl) {
    auto t = model::load_causal_lm(a.teacher, a.model.torch_device(), a.model.torch_dtype());
    j = eval::kl_to_teacher(m, t, ids, a.ctx, a.batch).to_json();
    j["teacher"] = a.teacher;
  } else {
    j = eval::perplexity(m, ids, a.ctx, 0, a.batch).to_json();
  }
  j["file"] = a.file;
  std::printf("%s\n", j.dump().c_str());
  return 0;
}

struct AllArgs {
  ModelArgs model;
  std::string teacher, out;
  eval::ModelEvalOptions opt;
};

int run_all(AllArgs a) {
  auto tok = a.model.tokenizer();
  if (!a.opt.text_file.empty())
    HYLA_CHECK(std::filesystem::is_regular_file(a.opt.text_file), "--text {}: file not found", a.opt.text_file);
  auto m = a.model.load();
  std::optional<model::CausalLM> teacher;
  if (!a.teacher.empty()) teacher = model::load_causal_lm(a.teacher, a.model.torch_device(), a.model.torch_dtype());
  auto j = eval::evaluate_model(m, *tok, teacher ? &*teacher : nullptr, a.teacher, a.model.path, a.opt);
  if (a.out.empty()) {
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    io::write_text_atomic(a.out, j.dump(2) + "\n");
    std::printf("wrote %s\n", a.out.c_str());
  }
  return 0;
}

void add_text_options(CLI::App& s, TextArgs& a) {
  a.model.add(s);
  s.add_option("file", a.file, "held-out text file")->required();
  s.add_option("--ctx", a.ctx, "window length in tokens (windows do not overlap)")->capture_default_str();
  s.add_option("--batch", a.batch, "windows per forward pass")->capture_default_str();
  s.add_option("--max-tokens", a.max_tokens, "score at most this many tokens of the file");
}

Register reg("eval", "evaluate a model (subcommands: recall, ppl, kl, all)", [](CLI::App& app) {
  app.require_subcommand(1);
  auto r = std::make_shared<RecallArgs>();
  auto* rs = app.add_subcommand("recall", "MQAR, passkey or needle-in-a-haystack accuracy (synthetic, seeded)");
  r->model.add(*rs);
  rs->add_option("--task", r->task, "mqar | passkey | niah")->capture_default_str();
  rs->add_option("--samples", r->samples)->capture_default_str();
  rs->add_option("--length", r->length, "sequence length in tokens")->capture_default_str();
  rs->add_option("--kv-pairs", r->kv_pairs, "MQAR key-value pairs")->capture_default_str();
  rs->add_option("--mqar-vocab", r->mqar_vocab, "MQAR token region size")->capture_default_str();
  rs->add_option("--mqar-offset", r->mqar_offset, "MQAR token region start")->capture_default_str();
  rs->add_option("--new-tokens", r->new_tokens, "NIAH: tokens generated per prompt (RULER: 128)")
      ->capture_default_str();
  rs->add_option("--seed", r->seed)->capture_default_str();

  auto p = std::make_shared<TextArgs>();
  auto* ps = app.add_subcommand("ppl", "perplexity on a text file (JSON)");
  add_text_options(*ps, *p);

  auto k = std::make_shared<TextArgs>();
  auto* ks = app.add_subcommand("kl", "mean KL(teacher || student) per token and top-1 agreement on a text file");
  add_text_options(*ks, *k);
  ks->add_option("--teacher", k->teacher, "teacher model directory")->required();

  auto a = std::make_shared<AllArgs>();
  auto* as = app.add_subcommand("all", "perplexity, KL, recall at several lengths and cache memory, as JSON");
  a->model.add(*as);
  as->add_option("--teacher", a->teacher, "teacher model directory (adds KL and top-1 agreement)");
  as->add_option("--text", a->opt.text_file, "held-out text file (perplexity, KL)");
  as->add_option("-o,--out", a->out, "write the JSON here (default: stdout)");
  as->add_option("--name", a->opt.name, "label in reports (default: the model directory's name)");
  as->add_option("--ctx", a->opt.ctx, "perplexity/KL window length")->capture_default_str();
  as->add_option("--max-tokens", a->opt.max_tokens, "score at most this many tokens of the text");
  as->add_option("--lengths", a->opt.lengths, "recall lengths in tokens (default 256,512,1024,2048)")->delimiter(',');
  as->add_option("--tasks", a->opt.tasks, "recall tasks (default mqar,passkey,niah)")->delimiter(',');
  as->add_option("--mqar-samples", a->opt.mqar_samples)->capture_default_str();
  as->add_option("--mqar-kv-pairs", a->opt.mqar_kv_pairs, "capped at length/4")->capture_default_str();
  as->add_option("--mqar-vocab", a->opt.mqar_vocab)->capture_default_str();
  as->add_option("--mqar-offset", a->opt.mqar_offset)->capture_default_str();
  as->add_option("--passkey-samples", a->opt.passkey_samples)->capture_default_str();
  as->add_option("--niah-samples", a->opt.niah_samples)->capture_default_str();
  as->add_option("--niah-new-tokens", a->opt.niah_new_tokens)->capture_default_str();
  as->add_option("--seed", a->opt.seed)->capture_default_str();
  return [=]() {
    if (rs->parsed()) return run_recall(*r);
    if (ps->parsed()) return run_text(*p, false);
    if (ks->parsed()) return run_text(*k, true);
    return run_all(*a);
  };
});

}  // namespace
}  // namespace hyla::cli
