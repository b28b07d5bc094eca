#include "hyla/serve/runner.h"

namespace hyla::serve {

std::vector<StepResult> Runner::run(const std::vector<Work>& work) {
  torch::NoGradGuard no_grad;
  auto dev = model_->embed_tokens->weight.device();
  std::vector<StepResult> out;
  for (auto& w : work) {
    auto& s = *w.seq;
    std::vector<int64_t> ids(s.tokens.begin() + s.computed, s.tokens.begin() + s.computed + w.tokens);
    auto input = torch::tensor(ids, torch::kInt64).view({1, w.tokens}).to(dev);
    model::ForwardOptions fo;
    fo.cache = &s.cache;
    bool all_positions = s.request.sampling.prompt_logprobs && s.prefilling();
    fo.logits_last_n = all_positions ? 0 : 1;
    auto logits = model_->forward(input, fo)[0];  // [n, V]
    out.push_back({&s, s.computed, w.tokens, logits});
    s.computed += w.tokens;
  }
  return out;
}

}  // namespace hyla::serve
