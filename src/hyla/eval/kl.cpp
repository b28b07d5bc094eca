#include "hyla/eval/kl.h"

#include "hyla/eval/perplexity.h"
#include "hyla/util/error.h"
#include "hyla/util/progress.h"

namespace hyla::eval {

nlohmann::json KlResult::to_json() const {
  return {{"tokens", tokens}, {"kl", mean_kl()}, {"top1_agreement", top1()}, {"ppl", student_ppl()},
          {"teacher_ppl", teacher_ppl()}, {"ctx", ctx}};
}

torch::Tensor token_kl(const torch::Tensor& teacher_logits, const torch::Tensor& student_logits) {
  auto lt = torch::log_softmax(teacher_logits.to(torch::kFloat64), -1);
  auto ls = torch::log_softmax(student_logits.to(torch::kFloat64), -1);
  return (lt.exp() * (lt - ls)).sum(-1);
}

KlResult kl_to_teacher(model::CausalLM& student, model::CausalLM& teacher, const torch::Tensor& ids, int64_t ctx,
                       int64_t batch, bool progress) {
  HYLA_CHECK(student->config().vocab_size == teacher->config().vocab_size,
             "KL to the teacher: vocabularies differ (student {}, teacher {})", student->config().vocab_size,
             teacher->config().vocab_size);
  HYLA_CHECK(ids.dim() == 1 && ids.size(0) >= 2, "KL to the teacher: need at least 2 tokens");
  auto windows = text_windows(ids.size(0), ctx);
  auto dev = student->embed_tokens->weight.device();
  torch::NoGradGuard ng;
  KlResult r;
  r.ctx = ctx;
  ProgressBar bar("kl", ids.size(0), "tok");
  bar.set_enabled(progress);
  for (size_t w = 0; w < windows.size();) {
    size_t end_w = std::min(windows.size(), w + size_t(std::max<int64_t>(batch, 1)));
    auto len = [&](size_t i) { return windows[i].end - windows[i].begin; };
    while (end_w > w + 1 && len(end_w - 1) != len(w)) --end_w;
    std::vector<torch::Tensor> rows;
    for (size_t i = w; i < end_w; ++i) rows.push_back(ids.narrow(0, windows[i].begin, len(i)));
    auto x = torch::stack(rows).to(dev);
    int64_t T = x.size(1);
    // Non-overlapping windows: predictions 0..T-2 score tokens 1..T-1 (as perplexity).
    auto t_logits = teacher->forward(x).narrow(1, 0, T - 1).to(torch::kCPU);
    auto s_logits = student->forward(x).narrow(1, 0, T - 1).to(torch::kCPU);
    auto tgt = x.narrow(1, 1, T - 1).to(torch::kCPU).unsqueeze(-1);
    for (int64_t b = 0; b < x.size(0); ++b) {  // one row at a time: float64 [T, V] stays small
      auto lt = torch::log_softmax(t_logits[b].to(torch::kFloat64), -1);
      auto ls = torch::log_softmax(s_logits[b].to(torch::kFloat64), -1);
      r.kl_sum += (lt.exp() * (lt - ls)).sum().item<double>();
      r.teacher_nll_sum -= lt.gather(-1, tgt[b]).sum().item<double>();
      r.student_nll_sum -= ls.gather(-1, tgt[b]).sum().item<double>();
      r.top1_agree += lt.argmax(-1).eq(ls.argmax(-1)).sum().item<int64_t>();
    }
    r.tokens += x.size(0) * (T - 1);
    bar.update(windows[end_w - 1].end, fmt::format("kl {:.4f}", r.mean_kl()));
    w = end_w;
  }
  bar.finish(fmt::format("kl {:.4f}", r.mean_kl()));
  return r;
}

}  // namespace hyla::eval
