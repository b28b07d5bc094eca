// `hyla generate MODEL --prompt TEXT`: text continuation, streamed to the terminal.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "command.h"
#include "common.h"
#include "hyla/model/generate.h"
#include "hyla/util/error.h"

namespace hyla::cli {
namespace {

struct GenerateArgs {
  ModelArgs model;
  std::string prompt, prompt_file;
  int64_t max_new_tokens = 64, batch = 1;
  double temperature = 0.0, top_p = 1.0;
  int64_t top_k = 0;
  uint64_t seed = 0;
  bool no_stream = false, stats = false, ignore_eos = false, eager = false;
};

// Prints only the text that became final: byte-level tokens can split a UTF-8
// character, so hold back output that ends in an incomplete sequence. At the end of
// the stream, finish() prints what was held back: an incomplete tail decodes to U+FFFD,
// as transformers' and tokenizers' decode of the whole sequence gives.
class StreamPrinter {
 public:
  explicit StreamPrinter(const io::Tokenizer& tok) : tok_(tok) {}
  void push(int32_t id) {
    ids_.push_back(id);
    std::string text = tok_.decode(ids_, /*skip_special=*/true);
    if (text.size() >= 3 && text.compare(text.size() - 3, 3, "\xEF\xBF\xBD") == 0) return;  // U+FFFD pending
    if (text.size() > printed_) {
      std::fwrite(text.data() + printed_, 1, text.size() - printed_, stdout);
      std::fflush(stdout);
      printed_ = text.size();
    }
  }
  void finish() {
    std::string text = tok_.decode(ids_, /*skip_special=*/true);
    if (text.size() > printed_) std::fwrite(text.data() + printed_, 1, text.size() - printed_, stdout);
    printed_ = text.size();
  }

 private:
  const io::Tokenizer& tok_;
  std::vector<int32_t> ids_;
  size_t printed_ = 0;
};

int run_generate(const GenerateArgs& a) {
  std::string prompt = a.prompt;
  if (!a.prompt_file.empty()) {
    std::ifstream in(a.prompt_file);
    HYLA_CHECK(in.good(), "--prompt-file {}: cannot open", a.prompt_file);
    std::stringstream ss;
    ss << in.rdbuf();
    prompt = ss.str();
  }
  HYLA_CHECK(!prompt.empty(), "give a prompt with --prompt or --prompt-file");
  HYLA_CHECK(a.batch >= 1, "--batch must be >= 1");
  auto tok = a.model.tokenizer();
  auto m = a.model.load();
  auto ids = tok->encode(prompt, /*add_special=*/true);
  HYLA_CHECK(!ids.empty(), "the prompt encodes to no tokens");
  auto dev = a.model.torch_device();
  auto prompt_t = torch::tensor(std::vector<int64_t>(ids.begin(), ids.end()), torch::kInt64)
                      .view({1, -1}).repeat({a.batch, 1}).to(dev);
  model::GenerateOptions go;
  go.max_new_tokens = a.max_new_tokens;
  go.static_shapes = go.cuda_graph = !a.eager;
  go.sampling = {a.temperature, a.top_k, a.top_p, a.seed};
  if (!a.ignore_eos) {
    go.stop_ids = m->config().eos_token_id;
    if (auto e = tok->eos_id(); e && go.stop_ids.empty()) go.stop_ids.push_back(*e);
  }
  StreamPrinter printer(*tok);
  bool stream = !a.no_stream && a.batch == 1;
  if (stream) {
    std::fwrite(prompt.data(), 1, prompt.size(), stdout);
    go.on_token = [&](const torch::Tensor& next) {
      int32_t id = static_cast<int32_t>(next[0].item<int64_t>());
      for (auto s : go.stop_ids)
        if (id == s) return false;
      printer.push(id);
      return true;
    };
  }
  auto r = model::generate(m, prompt_t, go);
  if (stream) {
    printer.finish();
    std::printf("\n");
    std::fflush(stdout);  // before --stats on stderr
  }
  else {
    for (int64_t b = 0; b < a.batch; ++b) {
      auto row = r.tokens[b];
      std::vector<int32_t> out(row.size(0));
      for (int64_t i = 0; i < row.size(0); ++i) out[i] = static_cast<int32_t>(row[i].item<int64_t>());
      std::printf("%s%s\n", prompt.c_str(), tok->decode(out, true).c_str());
    }
  }
  if (a.stats)
    std::fprintf(stderr, "prompt %zu tokens, prefill %.3f s; %lld decode steps in %.3f s (%.1f tokens/s per row)\n",
                 ids.size(), r.prefill_seconds, (long long)r.decode_steps, r.decode_seconds,
                 r.decode_steps / std::max(r.decode_seconds, 1e-9));
  return 0;
}

Register reg("generate", "continue a prompt (greedy, or sampling with temperature / top-k / top-p), streaming",
             [](CLI::App& app) {
               auto a = std::make_shared<GenerateArgs>();
               a->model.add(app);
               app.add_option("-p,--prompt", a->prompt, "prompt text");
               app.add_option("--prompt-file", a->prompt_file, "read the prompt from a file");
               app.add_option("-n,--max-new-tokens", a->max_new_tokens, "tokens to generate")->capture_default_str();
               app.add_option("-t,--temperature", a->temperature, "0 = greedy")->capture_default_str();
               app.add_option("--top-k", a->top_k, "keep the k most likely tokens (0 = off)")->capture_default_str();
               app.add_option("--top-p", a->top_p, "nucleus sampling mass (1 = off)")->capture_default_str();
               app.add_option("--seed", a->seed, "sampling seed")->capture_default_str();
               app.add_option("--batch", a->batch, "generate this many rows at once")->capture_default_str();
               app.add_flag("--no-stream", a->no_stream, "print at the end instead of token by token");
               app.add_flag("--ignore-eos", a->ignore_eos, "do not stop at the end-of-sequence token");
               app.add_flag("--stats", a->stats, "print timing to stderr");
               app.add_flag("--eager", a->eager, "growing cache, no CUDA graph (the reference decode path)");
               return [=]() { return run_generate(*a); };
             });

}  // namespace
}  // namespace hyla::cli
