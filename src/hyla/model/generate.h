// Autoregressive generation: one prefill over the prompt (batched, left-aligned prompts
// of equal length), then one-token decode steps against the model's cache.
#pragma once
#include <functional>

#include "hyla/model/decoder.h"
#include "hyla/model/sampler.h"

namespace hyla::model {

struct GenerateOptions {
  int64_t max_new_tokens = 32;
  SamplingParams sampling;
  std::vector<int64_t> stop_ids;  // e.g. the EOS ids; a row stops when it emits one
  // Called after each step with the new token of every row ([B] int64 CPU); return
  // false to stop early. Used for streaming to the terminal.
  std::function<bool(const torch::Tensor&)> on_token;
  bool static_shapes = true;  // preallocated KV cache, in-place recurrent states
  bool cuda_graph = true;     // replay one captured decode step on CUDA
};

struct GenerateResult {
  torch::Tensor tokens;     // [B, new] generated ids (CPU int64), rows padded with stop id
  double prefill_seconds = 0, decode_seconds = 0;
  int64_t decode_steps = 0;
  bool cuda_graph = false;  // the decode steps replayed a captured CUDA graph
};

// prompt [B, T] int64 on the model's device.
GenerateResult generate(CausalLM& model, const torch::Tensor& prompt, const GenerateOptions& opt);

}  // namespace hyla::model
