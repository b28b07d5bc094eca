#include "hyla/model/sampler.h"

#include "hyla/util/error.h"

namespace hyla::model {

Sampler::Sampler(const SamplingParams& p) : p_(p) {
  HYLA_CHECK(p.temperature >= 0, "temperature must be >= 0, got {}", p.temperature);
  HYLA_CHECK(p.top_p > 0 && p.top_p <= 1, "top_p must be in (0, 1], got {}", p.top_p);
  HYLA_CHECK(p.top_k >= 0, "top_k must be >= 0, got {}", p.top_k);
  gen_ = at::make_generator<at::CPUGeneratorImpl>(p.seed);
}

torch::Tensor Sampler::sample(const torch::Tensor& logits_in) {
  if (p_.temperature == 0.0) return logits_in.argmax(-1);
  auto probs = probabilities(logits_in).to(torch::kCPU);
  auto ids = torch::multinomial(probs, 1, false, gen_).squeeze(-1);
  return ids.to(logits_in.device());
}

torch::Tensor Sampler::probabilities(const torch::Tensor& logits_in) const {
  HYLA_CHECK(p_.temperature > 0, "sampling probabilities need a temperature > 0");
  auto logits = logits_in.to(torch::kFloat32) / p_.temperature;
  int64_t V = logits.size(-1);
  if (p_.top_k > 0 && p_.top_k < V) {
    auto kth = std::get<0>(logits.topk(p_.top_k, -1)).narrow(-1, p_.top_k - 1, 1);
    logits = logits.masked_fill(logits < kth, -std::numeric_limits<float>::infinity());
  }
  if (p_.top_p < 1.0) {
    // Drop the lowest-probability tokens whose cumulative mass stays within 1 - top_p,
    // always keeping the most likely token.
    auto [sorted, idx] = logits.sort(-1, /*descending=*/false);
    auto cum = sorted.softmax(-1).cumsum(-1);
    auto remove_sorted = cum <= (1 - p_.top_p);
    remove_sorted.narrow(-1, V - 1, 1).fill_(false);
    auto remove = remove_sorted.scatter(-1, idx, remove_sorted);
    logits = logits.masked_fill(remove, -std::numeric_limits<float>::infinity());
  }
  return logits.softmax(-1);
}

}  // namespace hyla::model
