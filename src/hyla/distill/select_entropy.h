// DSLA-Serve's attention-entropy sensitivity order (dsla.md §Sensitivity order,
// methods.md §4.4): for each attention layer, the softmax distribution of the LAST query
// over its prompt, entropy −Σ p ln p (terms with p ≤ 1e-9 skipped), mean over heads. The
// reference uses one chat prompt; hyla averages over several prompts of training text of
// mixed lengths (§4.4's proposal) and makes the direction a parameter.
//
// DSLA-Serve sorts ascending and converts from the front: the most focused (lowest
// entropy) layer becomes linear first, so the highest-entropy layers stay attention
// ("high-keeps", the default). "low-keeps" reverses it.
#pragma once
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "hyla/model/decoder.h"

namespace hyla::distill {

struct EntropyPrompt {
  int64_t offset, length;  // a window of the calibration token stream
};

// `count` windows spread evenly over a stream of `n_tokens`, lengths cycling from
// max_len/4 up to max_len (mixed lengths).
std::vector<EntropyPrompt> entropy_prompts(int64_t n_tokens, int64_t count, int64_t max_len);

// Mean last-row attention entropy per layer (nats), averaged over heads and prompts.
// ids: [N] int64 calibration tokens. Layers that are not softmax attention get NaN.
std::vector<double> last_row_attention_entropy(model::CausalLM& teacher, const torch::Tensor& ids,
                                               const std::vector<EntropyPrompt>& prompts);

// Conversion order of DSLA-Serve (ascending entropy for "high-keeps", descending for
// "low-keeps"); the keep ranking is its reverse.
std::vector<int64_t> entropy_conversion_order(const std::vector<double>& entropy, const std::string& direction);

}  // namespace hyla::distill
