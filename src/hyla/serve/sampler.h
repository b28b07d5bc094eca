// Per-request token selection: model::Sampler (greedy / temperature / top-k / top-p,
// seeded per request, so a request samples the same tokens as `hyla generate` with that
// seed) plus the logprobs OpenAI's API reports: log-softmax of the model's raw logits,
// before temperature and truncation (as vLLM and OpenAI report them).
#pragma once
#include <torch/torch.h>

#include "hyla/model/sampler.h"
#include "hyla/serve/request.h"

namespace hyla::serve {

class RequestSampler {
 public:
  explicit RequestSampler(const SamplingOptions& o);
  // logits [1, V] of the next position -> the chosen token (with logprobs if asked).
  TokenLogprob next(const torch::Tensor& logits);
  // Logprobs of `targets` under logits rows [n, V] (row i scores targets[i]).
  std::vector<TokenLogprob> score(const torch::Tensor& logits, const std::vector<int64_t>& targets) const;

 private:
  TokenLogprob describe(const torch::Tensor& logprobs_row, int64_t id) const;
  SamplingOptions opt_;
  model::Sampler sampler_;
};

}  // namespace hyla::serve
