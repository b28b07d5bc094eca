#include "hyla/eval/perplexity.h"

#include "hyla/io/atomic_file.h"
#include "hyla/util/error.h"
#include "hyla/util/progress.h"

namespace hyla::eval {

std::vector<TextWindow> text_windows(int64_t n, int64_t ctx, int64_t stride) {
  HYLA_CHECK(ctx >= 2, "context length must be >= 2 (got {})", ctx);
  if (stride <= 0) stride = ctx;
  HYLA_CHECK(stride <= ctx, "stride ({}) must not exceed the context length ({})", stride, ctx);
  std::vector<TextWindow> out;
  for (int64_t begin = 0, prev_end = 0;;) {
    int64_t end = std::min(begin + ctx, n);
    out.push_back({begin, end, std::max(begin + 1, prev_end)});
    if (end == n) break;
    prev_end = end;
    begin = end - (ctx - stride);  // the next window ends `stride` tokens later
  }
  return out;
}

nlohmann::json PerplexityResult::to_json() const {
  return {{"tokens", tokens}, {"nll", nll()}, {"ppl", ppl()}, {"ctx", ctx}, {"stride", stride}};
}

PerplexityResult perplexity(model::CausalLM& m, const torch::Tensor& ids, int64_t ctx, int64_t stride, int64_t batch,
                            bool progress) {
  HYLA_CHECK(ids.dim() == 1 && ids.size(0) >= 2, "perplexity: need at least 2 tokens");
  auto windows = text_windows(ids.size(0), ctx, stride);
  auto dev = m->embed_tokens->weight.device();
  torch::NoGradGuard ng;
  PerplexityResult r;
  r.ctx = ctx;
  r.stride = stride > 0 ? stride : ctx;
  ProgressBar bar("ppl", ids.size(0), "tok");
  bar.set_enabled(progress);
  for (size_t w = 0; w < windows.size();) {
    // Windows in one batch must share a length; only the last one may be shorter.
    size_t end_w = std::min(windows.size(), w + size_t(std::max<int64_t>(batch, 1)));
    auto len = [&](size_t i) { return windows[i].end - windows[i].begin; };
    while (end_w > w + 1 && len(end_w - 1) != len(w)) --end_w;
    std::vector<torch::Tensor> rows;
    for (size_t i = w; i < end_w; ++i) rows.push_back(ids.narrow(0, windows[i].begin, len(i)));
    auto x = torch::stack(rows).to(dev);
    auto logp = torch::log_softmax(m->forward(x).to(torch::kFloat32), -1);
    auto tgt = x.narrow(1, 1, x.size(1) - 1).unsqueeze(-1);
    auto tok_lp = logp.narrow(1, 0, x.size(1) - 1).gather(-1, tgt).squeeze(-1).to(torch::kCPU, torch::kFloat64);
    for (size_t i = w; i < end_w; ++i) {
      const auto& win = windows[i];
      int64_t from = win.score_from - win.begin - 1;  // prediction index of token score_from
      int64_t count = win.end - win.score_from;
      r.nll_sum -= tok_lp[i - w].narrow(0, from, count).sum().item<double>();
      r.tokens += count;
    }
    bar.update(windows[end_w - 1].end, fmt::format("ppl {:.3f}", r.ppl()));
    w = end_w;
  }
  bar.finish(fmt::format("ppl {:.3f}", r.ppl()));
  return r;
}

torch::Tensor text_file_tokens(const std::string& path, const io::Tokenizer& tok, int64_t max_tokens,
                               int64_t min_tokens) {
  auto text = io::read_text_file(path);
  HYLA_CHECK(!text.empty(), "{}: file is empty", path);
  auto ids32 = tok.encode(text, /*add_special=*/false);
  std::vector<int64_t> ids(ids32.begin(), ids32.end());
  if (max_tokens > 0 && int64_t(ids.size()) > max_tokens) ids.resize(max_tokens);
  HYLA_CHECK(int64_t(ids.size()) >= min_tokens, "{}: {} tokens, fewer than the {} needed", path, ids.size(),
             min_tokens);
  return torch::tensor(ids, torch::kInt64);
}

}  // namespace hyla::eval
