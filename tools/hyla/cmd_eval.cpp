// `hyla eval recall MODEL --task mqar|passkey`: in-context recall accuracy.
#include <cstdio>

#include "command.h"
#include "common.h"
#include "hyla/eval/recall.h"
#include "hyla/util/error.h"

namespace hyla::cli {
namespace {

struct EvalArgs {
  ModelArgs model;
  std::string task = "mqar";
  int64_t samples = 100, length = 512, kv_pairs = 16, mqar_vocab = 4096, mqar_offset = 4096;
  uint64_t seed = 12345;
};

int run_eval(const EvalArgs& a) {
  auto m = a.model.load();
  eval::RecallResult r;
  if (a.task == "mqar") {
    data::MqarConfig c;
    c.seq_len = a.length;
    c.num_kv_pairs = a.kv_pairs;
    c.vocab_size = a.mqar_vocab;
    c.token_offset = int32_t(a.mqar_offset);
    data::validate(c);
    r = eval::eval_mqar(m, c, a.samples, a.seed);
  } else if (a.task == "passkey") {
    data::PasskeyConfig c;
    c.length_tokens = a.length;
    auto tok = a.model.tokenizer();
    r = eval::eval_passkey(m, *tok, c, a.samples, a.seed);
  } else {
    fail("--task {}: unknown (have: mqar, passkey)", a.task);
  }
  auto j = r.to_json();
  j["length"] = a.length;
  if (a.task == "mqar") j["kv_pairs"] = a.kv_pairs;
  std::printf("%s\n", j.dump().c_str());
  return 0;
}

Register reg("eval", "evaluate a model (subcommand: recall)", [](CLI::App& app) {
  auto a = std::make_shared<EvalArgs>();
  app.require_subcommand(1);
  auto* r = app.add_subcommand("recall", "MQAR or passkey accuracy (synthetic, seeded)");
  a->model.add(*r);
  r->add_option("--task", a->task, "mqar | passkey")->capture_default_str();
  r->add_option("--samples", a->samples)->capture_default_str();
  r->add_option("--length", a->length, "sequence length in tokens")->capture_default_str();
  r->add_option("--kv-pairs", a->kv_pairs, "MQAR key-value pairs")->capture_default_str();
  r->add_option("--mqar-vocab", a->mqar_vocab, "MQAR token region size")->capture_default_str();
  r->add_option("--mqar-offset", a->mqar_offset, "MQAR token region start")->capture_default_str();
  r->add_option("--seed", a->seed)->capture_default_str();
  return [=]() { return run_eval(*a); };
});

}  // namespace
}  // namespace hyla::cli
