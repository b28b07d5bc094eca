// `hyla ppl MODEL FILE`: perplexity of a model on a text file, over non-overlapping
// windows of --ctx tokens (or a sliding window with --stride, as in HF's perplexity
// guide: each token is scored once, with up to ctx-stride tokens of extra context).
#include <cstdio>

#include "command.h"
#include "common.h"
#include "hyla/eval/perplexity.h"

namespace hyla::cli {
namespace {

struct PplArgs {
  ModelArgs model;
  std::string file;
  int64_t ctx = 512, stride = 0, batch = 4, max_tokens = 0;
  bool as_json = false;
};

int run_ppl(const PplArgs& a) {
  auto tok = a.model.tokenizer();
  auto ids = eval::text_file_tokens(a.file, *tok, a.max_tokens);
  eval::text_windows(ids.size(0), a.ctx, a.stride);  // checks --ctx/--stride before loading
  auto m = a.model.load();
  auto r = eval::perplexity(m, ids, a.ctx, a.stride, a.batch);
  if (a.as_json) {
    auto j = r.to_json();
    j["file"] = a.file;
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("perplexity %.4f over %lld tokens (mean NLL %.4f nats, ctx %lld, stride %lld)\n", r.ppl(),
                (long long)r.tokens, r.nll(), (long long)r.ctx, (long long)r.stride);
  }
  return 0;
}

Register reg("ppl", "perplexity of a model on a text file", [](CLI::App& app) {
  auto a = std::make_shared<PplArgs>();
  a->model.add(app);
  app.add_option("file", a->file, "text file")->required();
  app.add_option("--ctx", a->ctx, "window length in tokens")->capture_default_str();
  app.add_option("--stride", a->stride, "sliding-window stride (default: ctx, no overlap)");
  app.add_option("--batch", a->batch, "windows per forward pass")->capture_default_str();
  app.add_option("--max-tokens", a->max_tokens, "score at most this many tokens of the file");
  app.add_flag("--json", a->as_json, "print JSON");
  return [=]() { return run_ppl(*a); };
});

}  // namespace
}  // namespace hyla::cli
