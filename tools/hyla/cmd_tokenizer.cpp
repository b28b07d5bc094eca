// `hyla tokenizer encode|decode|train`: the byte-level BPE tokenizer from the command line.
//   encode: text (file or stdin) -> ids, one line of space-separated ids per input line
//           (or for the whole input with --whole).
//   decode: ids (arguments, or whitespace-separated from a file/stdin) -> text.
//   train:  text files -> a new tokenizer.json that PyPI `tokenizers` loads.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>

#include "command.h"
#include "hyla/io/atomic_file.h"
#include "hyla/data/text_sources.h"
#include "hyla/io/tokenizer.h"
#include "hyla/train/bpe_trainer.h"
#include "hyla/util/error.h"
#include "hyla/util/log.h"

namespace {

std::string read_input(const std::string& path) {
  if (path.empty() || path == "-") {
    return std::string(std::istreambuf_iterator<char>(std::cin), {});
  }
  return hyla::io::read_text_file(path);
}

std::string join_ids(const std::vector<int32_t>& ids) {
  std::string out;
  for (size_t i = 0; i < ids.size(); ++i) out += (i ? " " : "") + std::to_string(ids[i]);
  return out;
}

struct EncodeArgs {
  std::string tokenizer, input;
  bool add_special = false, whole = false;
};

int run_encode(const EncodeArgs& a) {
  auto tok = hyla::io::Tokenizer::load(a.tokenizer);
  std::string text = read_input(a.input);
  if (a.whole) {
    std::printf("%s\n", join_ids(tok->encode(text, a.add_special)).c_str());
    return 0;
  }
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);)
    std::printf("%s\n", join_ids(tok->encode(line, a.add_special)).c_str());
  return 0;
}

struct DecodeArgs {
  std::string tokenizer, input;
  std::vector<int32_t> ids;
  bool skip_special = false;
};

int run_decode(const DecodeArgs& a) {
  auto tok = hyla::io::Tokenizer::load(a.tokenizer);
  std::vector<int32_t> ids = a.ids;
  if (ids.empty()) {
    std::istringstream in(read_input(a.input));
    std::string word;
    while (in >> word) {
      try {
        ids.push_back(int32_t(std::stol(word)));
      } catch (const std::exception&) {
        hyla::fail("{}: `{}` is not a token id", a.input.empty() ? "stdin" : a.input, word);
      }
    }
  }
  std::string text = tok->decode(ids, a.skip_special);
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::printf("\n");
  return 0;
}

struct TrainArgs {
  std::vector<std::string> inputs, special_tokens;
  std::string out, style = "gpt2", bos;
  int64_t vocab_size = 8192, min_frequency = 2, max_bytes = 0;
};

int run_train(const TrainArgs& a) {
  namespace bpe = hyla::io::bpe;
  hyla::train::BpeTrainOptions opt;
  opt.vocab_size = a.vocab_size;
  opt.special_tokens = a.special_tokens;
  opt.style = bpe::parse_bpe_style(a.style);
  opt.min_frequency = a.min_frequency;
  auto t0 = std::chrono::steady_clock::now();
  hyla::train::BpeTrainer trainer(opt);
  // Inputs are anything `hyla data prepare` reads (text, JSONL, the packaged corpora,
  // directories), so a tokenizer and its training corpus come from the same files.
  size_t bytes = 0;
  std::vector<std::filesystem::path> paths(a.inputs.begin(), a.inputs.end());
  for (const auto& src : hyla::data::discover_sources(paths)) {
    if (a.max_bytes > 0 && bytes >= size_t(a.max_bytes)) break;
    hyla::data::read_documents(src, [&](hyla::data::Document&& d) {
      if (a.max_bytes > 0 && bytes >= size_t(a.max_bytes)) return;
      bytes += d.text.size();
      trainer.feed(d.text);
    });
  }
  hyla::log::info("tokenizer train: {} bytes, {} distinct words", bytes, trainer.unique_words());
  bpe::BpeVocab vocab = trainer.train();
  std::optional<std::string> bos;
  if (!a.bos.empty()) bos = a.bos;
  hyla::io::write_text_atomic(a.out, bpe::bpe_tokenizer_json(vocab, opt.style, bos));
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  hyla::log::info("wrote {}: {} tokens, {} merges, {:.1f} s", a.out, vocab.tokens.size(),
                  vocab.merges.size(), s);
  return 0;
}

hyla::cli::Register reg("tokenizer", "byte-level BPE: encode, decode, train", [](CLI::App& app) {
  app.require_subcommand(1);
  auto enc = std::make_shared<EncodeArgs>();
  auto* e = app.add_subcommand("encode", "text -> token ids (one line of ids per input line)");
  e->add_option("-t,--tokenizer", enc->tokenizer, "tokenizer.json")->required();
  e->add_option("-i,--input", enc->input, "text file (default: stdin)");
  e->add_flag("--add-special", enc->add_special, "add the post-processor's special tokens (BOS)");
  e->add_flag("--whole", enc->whole, "encode the whole input as one text");

  auto dec = std::make_shared<DecodeArgs>();
  auto* d = app.add_subcommand("decode", "token ids -> text");
  d->add_option("-t,--tokenizer", dec->tokenizer, "tokenizer.json")->required();
  d->add_option("ids", dec->ids, "token ids (default: read from --input or stdin)");
  d->add_option("-i,--input", dec->input, "file of whitespace-separated ids");
  d->add_flag("--skip-special", dec->skip_special, "leave out special tokens");

  auto tr = std::make_shared<TrainArgs>();
  auto* t = app.add_subcommand("train", "learn a byte-level BPE from text files");
  t->add_option("--input", tr->inputs, "text/JSONL files, directories, corpus .tgz")->required()->check(CLI::ExistingPath);
  t->add_option("--max-bytes", tr->max_bytes, "learn from at most this many bytes of text (0: all)");
  t->add_option("--vocab-size", tr->vocab_size, "tokens in all: specials + 256 bytes + merges")
      ->required();
  t->add_option("--out", tr->out, "tokenizer.json to write")->required();
  t->add_option("--special-tokens", tr->special_tokens, "special tokens (ids 0, 1, ...)");
  t->add_option("--style", tr->style, "pre-tokenization: gpt2 | llama3 | qwen2")
      ->check(CLI::IsMember({"gpt2", "llama3", "qwen2"}));
  t->add_option("--min-frequency", tr->min_frequency, "stop when the best pair is rarer");
  t->add_option("--bos", tr->bos, "special token that encode(add_special) prepends");

  return [=]() -> int {
    if (e->parsed()) return run_encode(*enc);
    if (d->parsed()) return run_decode(*dec);
    return run_train(*tr);
  };
});

}  // namespace
