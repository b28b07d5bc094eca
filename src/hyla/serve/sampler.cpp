#include "hyla/serve/sampler.h"

namespace hyla::serve {

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::length: return "length";
    case FinishReason::stop: return "stop";
    case FinishReason::cancelled: return "cancelled";
    default: return "";
  }
}

RequestSampler::RequestSampler(const SamplingOptions& o)
    : opt_(o), sampler_(model::SamplingParams{o.temperature, o.top_k, o.top_p, o.seed}) {}

TokenLogprob RequestSampler::describe(const torch::Tensor& lp, int64_t id) const {
  TokenLogprob t;
  t.id = id;
  t.logprob = lp[id].item<float>();
  if (opt_.logprobs > 0) {
    auto [vals, idx] = lp.topk(std::min<int64_t>(opt_.logprobs, lp.size(0)));
    for (int64_t i = 0; i < vals.size(0); ++i) t.top.emplace_back(idx[i].item<int64_t>(), vals[i].item<float>());
  }
  return t;
}

TokenLogprob RequestSampler::next(const torch::Tensor& logits) {
  int64_t id = sampler_.sample(logits).to(torch::kCPU)[0].item<int64_t>();
  if (opt_.logprobs < 0) return TokenLogprob{id, 0.0f, {}};
  auto lp = torch::log_softmax(logits[0].to(torch::kCPU, torch::kFloat32), -1);
  return describe(lp, id);
}

std::vector<TokenLogprob> RequestSampler::score(const torch::Tensor& logits, const std::vector<int64_t>& targets) const {
  auto lp = torch::log_softmax(logits.to(torch::kCPU, torch::kFloat32), -1);
  std::vector<TokenLogprob> out;
  for (size_t i = 0; i < targets.size(); ++i) out.push_back(describe(lp[i], targets[i]));
  return out;
}

}  // namespace hyla::serve
