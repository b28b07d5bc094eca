// What a client asks the engine for, and what the engine hands back token by token.
// Token ids only: text (tokenizing, stop strings, chat templates) stays in the HTTP
// layer, so the engine is testable without a tokenizer and the HTTP layer never sees a
// tensor.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace hyla::serve {

struct SamplingOptions {
  double temperature = 0.0;  // 0 = greedy
  int64_t top_k = 0;         // 0 = off
  double top_p = 1.0;        // 1 = off
  uint64_t seed = 0;         // per request: the same seed gives the same tokens
  int64_t max_tokens = 16;   // 0 = score the prompt only (echo + logprobs)
  std::vector<int64_t> stop_ids;  // e.g. EOS: finishing with reason "stop", not emitted
  // < 0: no logprobs; n >= 0: each token's logprob and the n most likely alternatives.
  int64_t logprobs = -1;
  // Logprobs of the prompt's tokens too (OpenAI `echo` with `logprobs`): the prompt is
  // then prefilled from position 0, never restored from the prefix cache.
  bool prompt_logprobs = false;
};

struct TokenLogprob {
  int64_t id = 0;
  float logprob = 0;                                // log p(id | previous tokens)
  std::vector<std::pair<int64_t, float>> top;       // most likely alternatives
};

enum class FinishReason { none, length, stop, cancelled };
const char* finish_reason_name(FinishReason r);

// One update of a request: new tokens (usually one), and at the end a finish reason.
struct RequestOutput {
  uint64_t id = 0;
  std::vector<TokenLogprob> prompt_logprobs;  // once, before the first token, if asked
  std::vector<TokenLogprob> tokens;           // logprob fields set only if asked
  FinishReason finish = FinishReason::none;
  int64_t prompt_tokens = 0, cached_tokens = 0;  // cached: restored from the prefix cache
  int64_t level = 0;  // adaptive replacement: the level the request ran at (set at the end)
};

// Called on the engine's thread; must be quick (hand the output to another thread).
using OutputCallback = std::function<void(const RequestOutput&)>;

struct Request {
  std::vector<int64_t> prompt;
  SamplingOptions sampling;
  OutputCallback on_output;
};

}  // namespace hyla::serve
