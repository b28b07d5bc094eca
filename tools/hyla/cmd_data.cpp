// `hyla data ...`: prepare token shards from text, inspect them, and write synthetic
// recall samples (MQAR, passkey, NIAH) as JSONL.
#include <fstream>
#include <iostream>

#include "command.h"
#include "hyla/data/prepare.h"
#include "hyla/data/synthetic_mqar.h"
#include "hyla/data/synthetic_niah.h"
#include "hyla/data/synthetic_passkey.h"
#include "hyla/data/random.h"
#include "hyla/io/atomic_file.h"
#include "hyla/io/tokenizer.h"
#include "hyla/util/error.h"
#include "hyla/util/log.h"
#include "hyla/util/progress.h"

namespace fs = std::filesystem;
using namespace hyla;
using nlohmann::json;

namespace {

struct PrepareArgs {
  data::PrepareOptions opt;
  std::vector<std::string> inputs;
  std::string eos_token;
  bool no_progress = false;
};

// A tokenizer.json inside a model directory: that model's config.json names the EOS
// (`eos_token_id`, an id or a list whose first entry is the document separator).
std::optional<int32_t> eos_from_model_config(const fs::path& tokenizer_path) {
  fs::path cfg = tokenizer_path.parent_path() / "config.json";
  if (!fs::exists(cfg)) return std::nullopt;
  json j;
  try {
    j = json::parse(io::read_text_file(cfg));
  } catch (const json::exception& e) {
    fail("{}: not valid JSON ({})", cfg.string(), e.what());
  }
  auto e = j.find("eos_token_id");
  if (e == j.end() || e->is_null()) return std::nullopt;
  if (e->is_array()) {
    HYLA_CHECK(!e->empty() && e->front().is_number_integer(), "{}: eos_token_id must be an id or a list of ids",
               cfg.string());
    e = e->begin();
  }
  HYLA_CHECK(e->is_number_integer(), "{}: eos_token_id must be an id or a list of ids", cfg.string());
  log::info("EOS id {} from {}", e->get<int32_t>(), cfg.string());
  return e->get<int32_t>();
}

int run_prepare(PrepareArgs& a) {
  auto tok = io::Tokenizer::load(a.opt.tokenizer_path);
  for (auto& i : a.inputs) a.opt.inputs.emplace_back(i);
  if (!a.eos_token.empty()) {
    auto id = tok->token_to_id(a.eos_token);
    HYLA_CHECK(id.has_value(), "--eos-token \"{}\" is not a token of {}", a.eos_token,
               a.opt.tokenizer_path.string());
    a.opt.eos_id = *id;
  } else if (!tok->eos_id()) {
    if (auto id = eos_from_model_config(a.opt.tokenizer_path)) a.opt.eos_id = *id;
  }
  a.opt.progress = !a.no_progress;
  data::Manifest m = data::prepare_corpus(a.opt, *tok);
  for (auto& [name, s] : m.splits)
    log::info("{}: {} documents, {} tokens in {} shard(s)", name, s.documents, s.tokens,
              s.shards.size());
  log::info("wrote {} (tokens as {})", (a.opt.out_dir / "manifest.json").string(),
            data::dtype_name(m.dtype));
  return 0;
}

int run_stats(const std::string& dir, bool as_json) {
  data::Manifest m = data::Manifest::load(dir);
  for (auto& [name, s] : m.splits) {  // opening checks every shard against the manifest
    auto ds = data::TokenDataset::open(dir, name);
    HYLA_CHECK(ds->total_tokens() == s.tokens, "{}: split {} holds {} tokens, manifest says {}",
               dir, name, ds->total_tokens(), s.tokens);
  }
  if (as_json) {
    std::cout << m.to_json().dump(2) << "\n";
    return 0;
  }
  std::cout << fmt::format("corpus {}  dtype {}  vocab {}  eos {}\n", dir, data::dtype_name(m.dtype),
                           m.vocab_size, m.eos_id);
  std::cout << fmt::format("tokenizer {} (sha256 {})\n", m.tokenizer_path, m.tokenizer_sha256);
  for (auto& [name, s] : m.splits)
    std::cout << fmt::format("  {:<6} {:>14} tokens {:>10} documents {:>4} shards\n", name,
                             s.tokens, s.documents, s.shards.size());
  for (auto& src : m.sources)
    std::cout << fmt::format("  source {} [{}]: train {} tokens / {} docs, val {} tokens / {} docs\n",
                             src.name, src.format, src.tokens.at("train"),
                             src.documents.at("train"), src.tokens.at("val"),
                             src.documents.at("val"));
  return 0;
}

struct SynthArgs {
  std::string task = "mqar", tokenizer, out, haystack_corpus;
  int64_t count = 1;
  uint64_t seed = 0;
  data::MqarConfig mqar;
  bool zero_filler = false;
  int64_t length = 1024;
  double depth = -1;
  data::NiahConfig niah;
};

json sample_json(const data::SyntheticSample& s, const std::string& task, uint64_t seed) {
  return {{"task", task},       {"seed", seed},          {"input", s.input},
          {"target", s.target}, {"mask", s.mask},        {"prompt_len", s.prompt_len},
          {"prompt", s.prompt}, {"answer_text", s.answer_text}, {"answers", s.answers},
          {"depth", s.depth}};
}

int run_synth(SynthArgs& a) {
  std::shared_ptr<io::Tokenizer> tok;
  if (a.task != "mqar") {
    HYLA_CHECK(!a.tokenizer.empty(), "--task {} needs --tokenizer", a.task);
    tok = io::Tokenizer::load(a.tokenizer);
  }
  std::vector<std::string> haystack;
  if (!a.haystack_corpus.empty()) {
    HYLA_CHECK(a.task == "niah", "--haystack-corpus applies to --task niah");
    haystack = data::haystack_from_corpus(*data::TokenDataset::open(a.haystack_corpus, "val"), *tok);
  }
  a.mqar.random_filler = !a.zero_filler;
  std::ofstream file;
  if (!a.out.empty()) {
    file.open(a.out);
    HYLA_CHECK(file.good(), "cannot write {}", a.out);
  }
  std::ostream& out = a.out.empty() ? std::cout : file;
  ProgressBar bar("synth " + a.task, a.count, "samples");
  bar.set_enabled(a.task != "mqar");  // MQAR is instant; prompts with a search are not
  for (int64_t i = 0; i < a.count; ++i) {
    uint64_t seed = data::derive_seed(a.seed, static_cast<uint64_t>(i));
    data::SyntheticSample s;
    if (a.task == "mqar") {
      s = data::mqar_sample(a.mqar, seed);
    } else if (a.task == "passkey") {
      s = data::passkey_sample({.length_tokens = a.length, .depth = a.depth}, *tok, seed);
    } else if (a.task == "niah") {
      a.niah.length_tokens = a.length;
      a.niah.depth = a.depth;
      s = data::niah_sample(a.niah, *tok, haystack.empty() ? nullptr : &haystack, seed);
    } else {
      fail("--task {}: expected mqar, passkey or niah", a.task);
    }
    out << sample_json(s, a.task, seed).dump() << "\n";
    bar.update(i + 1);
  }
  bar.finish();
  return 0;
}

void add_prepare(CLI::App& data_cmd, PrepareArgs& a, std::function<int()>& act) {
  auto* p = data_cmd.add_subcommand("prepare", "tokenize text into memory-mapped token shards");
  p->add_option("--tokenizer", a.opt.tokenizer_path, "tokenizer.json")->required();
  p->add_option("--input", a.inputs, ".txt/.md/.jsonl files, directories, corpus .tgz")
      ->required()->expected(1, -1);
  p->add_option("--out", a.opt.out_dir, "output directory")->required();
  p->add_option("--val-fraction", a.opt.val_fraction, "share of documents held out")
      ->capture_default_str();
  p->add_option("--seed", a.opt.seed, "split seed")->capture_default_str();
  p->add_option("--shard-tokens", a.opt.shard_tokens, "tokens per shard file")->capture_default_str();
  p->add_option("--eos-token", a.eos_token, "EOS token text, when neither the tokenizer nor the config.json beside it names one");
  p->add_flag("--bos", a.opt.add_bos, "prepend BOS to every document");
  p->add_option("--threads", a.opt.threads, "encoder threads (0: all cores, at most 8)");
  p->add_option("--nlp-sentences-per-doc", a.opt.read.nlp_sentences_per_doc,
                "nlp-corpus sentences joined into one document")->capture_default_str();
  p->add_flag("--no-progress", a.no_progress, "no progress bar");
  p->callback([&] { act = [&] { return run_prepare(a); }; });
}

void add_synth(CLI::App& data_cmd, SynthArgs& a, std::function<int()>& act) {
  auto* s = data_cmd.add_subcommand("synth", "write synthetic recall samples as JSONL");
  s->add_option("--task", a.task, "mqar | passkey | niah")->capture_default_str();
  s->add_option("--tokenizer", a.tokenizer, "tokenizer.json (passkey, niah)");
  s->add_option("--count", a.count, "samples")->capture_default_str();
  s->add_option("--seed", a.seed, "seed; sample i uses derive_seed(seed, i)")->capture_default_str();
  s->add_option("--out", a.out, "output .jsonl (default stdout)");
  s->add_option("--vocab", a.mqar.vocab_size, "MQAR vocabulary V")->capture_default_str();
  s->add_option("--seq-len", a.mqar.seq_len, "MQAR sequence length L")->capture_default_str();
  s->add_option("--num-kv", a.mqar.num_kv_pairs, "MQAR key-value pairs N")->capture_default_str();
  s->add_option("--token-offset", a.mqar.token_offset, "MQAR id of token 0");
  s->add_flag("--zero-filler", a.zero_filler, "MQAR filler 0 instead of random tokens");
  s->add_option("--length", a.length, "passkey/NIAH length in tokens")->capture_default_str();
  s->add_option("--depth", a.depth, "needle depth in [0, 1]; default random");
  s->add_option("--keys", a.niah.num_keys, "NIAH keys (queried + distractors)");
  s->add_option("--values", a.niah.num_values, "NIAH values per key");
  s->add_option("--queries", a.niah.num_queries, "NIAH keys asked");
  s->add_option("--haystack-corpus", a.haystack_corpus,
                "NIAH: prose haystack from this prepared corpus's val split (default: noise)");
  s->callback([&] { act = [&] { return run_synth(a); }; });
}

cli::Register reg("data", "prepare corpora, inspect token shards, make synthetic recall data",
                  [](CLI::App& app) -> std::function<int()> {
  auto prep = std::make_shared<PrepareArgs>();
  auto synth = std::make_shared<SynthArgs>();
  auto stats_dir = std::make_shared<std::string>();
  auto stats_json = std::make_shared<bool>(false);
  auto act = std::make_shared<std::function<int()>>();
  app.require_subcommand(1);
  add_prepare(app, *prep, *act);
  add_synth(app, *synth, *act);
  auto* st = app.add_subcommand("stats", "summarise and verify a prepared corpus");
  st->add_option("dir", *stats_dir, "corpus directory")->required();
  st->add_flag("--json", *stats_json, "print the manifest as JSON");
  st->callback([=] { *act = [=] { return run_stats(*stats_dir, *stats_json); }; });
  // The option storage lives as long as the action that reads it.
  return [prep, synth, stats_dir, stats_json, act] { return (*act)(); };
});

}  // namespace
