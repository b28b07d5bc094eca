// One engine step on the model: feeds every scheduled sequence its tokens against its
// own cache and returns the logits the sampler needs.
//
// Sequences sit at different positions with different cache lengths, and the model's
// attention takes one position range and one cache length per batch, so each sequence
// runs its own forward (batch 1) within the step. Batching rows at different positions
// into one forward needs a ragged (paged) attention path: not built yet.
#pragma once
#include <vector>

#include "hyla/model/decoder.h"
#include "hyla/serve/scheduler.h"

namespace hyla::serve {

struct StepResult {
  Sequence* seq;
  int64_t start, tokens;  // positions fed
  torch::Tensor logits;   // [n, V]: the last position, or all fed positions for prompt logprobs
};

class Runner {
 public:
  explicit Runner(model::CausalLM model) : model_(std::move(model)) {}
  std::vector<StepResult> run(const std::vector<Work>& work);
  model::CausalLM& model() { return model_; }

 private:
  model::CausalLM model_;
};

}  // namespace hyla::serve
