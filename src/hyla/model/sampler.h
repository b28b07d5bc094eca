// Next-token selection from logits: greedy, or sampling with temperature, top-k and
// top-p (nucleus), in the order transformers applies them (temperature, top-k, top-p).
#pragma once
#include <torch/torch.h>

#include <cstdint>

namespace hyla::model {

struct SamplingParams {
  double temperature = 0.0;  // 0 = greedy
  int64_t top_k = 0;         // 0 = off
  double top_p = 1.0;        // 1 = off
  uint64_t seed = 0;
};

class Sampler {
 public:
  explicit Sampler(const SamplingParams& p);
  // logits [B, V] -> ids [B] (int64, same device).
  torch::Tensor sample(const torch::Tensor& logits);
  // The distribution sample() draws from when temperature > 0: softmax of the logits after
  // temperature, top-k and top-p, [B, V] float32 on the logits' device (0 outside the
  // kept set). The tests compare it with transformers' logits warpers.
  torch::Tensor probabilities(const torch::Tensor& logits) const;
  const SamplingParams& params() const { return p_; }

 private:
  SamplingParams p_;
  at::Generator gen_;
};

}  // namespace hyla::model
