// `hyla ppl MODEL FILE`: perplexity of a model on a text file, over non-overlapping
// windows of --ctx tokens (or a sliding window with --stride, as in HF's perplexity
// guide: each token is scored once, with up to ctx-stride tokens of extra context).
#include <cmath>
#include <cstdio>

#include "command.h"
#include "common.h"
#include "hyla/io/atomic_file.h"
#include "hyla/util/error.h"
#include "hyla/util/progress.h"

namespace hyla::cli {
namespace {

struct PplArgs {
  ModelArgs model;
  std::string file;
  int64_t ctx = 512, stride = 0, batch = 4, max_tokens = 0;
  bool as_json = false;
};

int run_ppl(const PplArgs& a) {
  auto text = io::read_text_file(a.file);
  HYLA_CHECK(!text.empty(), "{}: file is empty", a.file);
  HYLA_CHECK(a.ctx >= 2, "--ctx must be >= 2");
  int64_t stride = a.stride > 0 ? a.stride : a.ctx;
  HYLA_CHECK(stride <= a.ctx, "--stride ({}) must not exceed --ctx ({})", stride, a.ctx);
  auto tok = a.model.tokenizer();
  auto m = a.model.load();
  auto ids32 = tok->encode(text, /*add_special=*/false);
  std::vector<int64_t> ids(ids32.begin(), ids32.end());
  if (a.max_tokens > 0 && (int64_t)ids.size() > a.max_tokens) ids.resize(a.max_tokens);
  HYLA_CHECK(ids.size() >= 2, "{}: fewer than 2 tokens", a.file);
  auto all = torch::tensor(ids, torch::kInt64);
  int64_t N = all.size(0);
  // Windows [begin, end): score tokens from max(begin+1, prev_end) .. end-1.
  struct Window { int64_t begin, end, score_from; };
  std::vector<Window> windows;
  for (int64_t begin = 0, prev_end = 0;;) {
    int64_t end = std::min(begin + a.ctx, N);
    windows.push_back({begin, end, std::max(begin + 1, prev_end)});
    if (end == N) break;
    prev_end = end;
    begin = end - (a.ctx - stride);  // next window ends `stride` tokens later
  }
  auto dev = a.model.torch_device();
  torch::NoGradGuard ng;
  double nll = 0;
  int64_t scored = 0;
  ProgressBar bar("ppl", N, "tok");
  for (size_t w = 0; w < windows.size(); w += a.batch) {
    // Windows in one batch must share a length; the last window may be shorter.
    size_t end_w = std::min(windows.size(), w + a.batch);
    while (end_w > w + 1 && (windows[end_w - 1].end - windows[end_w - 1].begin) !=
                                (windows[w].end - windows[w].begin))
      --end_w;
    std::vector<torch::Tensor> rows;
    for (size_t i = w; i < end_w; ++i) rows.push_back(all.narrow(0, windows[i].begin, windows[i].end - windows[i].begin));
    auto x = torch::stack(rows).to(dev);
    auto logp = torch::log_softmax(m->forward(x).to(torch::kFloat32), -1);
    auto tgt = x.narrow(1, 1, x.size(1) - 1).unsqueeze(-1);
    auto tok_lp = logp.narrow(1, 0, x.size(1) - 1).gather(-1, tgt).squeeze(-1).to(torch::kCPU);  // [b, L-1]
    for (size_t i = w; i < end_w; ++i) {
      auto& win = windows[i];
      int64_t from = win.score_from - win.begin - 1;  // index into predictions of token win.begin+1+j
      int64_t count = win.end - win.score_from;
      nll -= tok_lp[i - w].narrow(0, from, count).sum().item<double>();
      scored += count;
    }
    bar.update(windows[end_w - 1].end, fmt::format("ppl {:.3f}", std::exp(nll / std::max<int64_t>(scored, 1))));
    w = end_w - a.batch;  // loop adds batch
  }
  double ppl = std::exp(nll / scored);
  bar.finish(fmt::format("ppl {:.3f}", ppl));
  if (a.as_json)
    std::printf("%s\n", nlohmann::json({{"file", a.file}, {"tokens", scored}, {"nll", nll / scored}, {"ppl", ppl},
                                        {"ctx", a.ctx}, {"stride", stride}}).dump().c_str());
  else
    std::printf("perplexity %.4f over %lld tokens (mean NLL %.4f nats, ctx %lld, stride %lld)\n", ppl,
                (long long)scored, nll / scored, (long long)a.ctx, (long long)stride);
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
