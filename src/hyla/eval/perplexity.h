// Perplexity on held-out text (eval.md §Language modelling): token-weighted mean NLL
// over windows of `ctx` tokens. With stride = ctx (the default) the windows do not
// overlap and each window's first token goes unscored; with stride < ctx each token is
// scored once, with up to ctx − stride tokens of extra context (HF's sliding-window rule).
#pragma once
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdint>
#include <vector>

#include "hyla/io/tokenizer.h"
#include "hyla/model/decoder.h"

namespace hyla::eval {

// Window [begin, end) of the token stream; its predictions score tokens score_from..end-1.
struct TextWindow {
  int64_t begin, end, score_from;
};
std::vector<TextWindow> text_windows(int64_t n_tokens, int64_t ctx, int64_t stride = 0);

struct PerplexityResult {
  int64_t tokens = 0;  // scored tokens
  double nll_sum = 0;  // nats
  int64_t ctx = 0, stride = 0;
  double nll() const { return tokens ? nll_sum / double(tokens) : 0.0; }
  double ppl() const { return std::exp(nll()); }
  nlohmann::json to_json() const;
};

// ids: [N] int64 on the CPU. Runs batches of `batch` equal-length windows on the model's
// device; `progress` shows a bar on stderr.
PerplexityResult perplexity(model::CausalLM& m, const torch::Tensor& ids, int64_t ctx, int64_t stride = 0,
                            int64_t batch = 4, bool progress = true);

// Reads and tokenises a text file (no special tokens), keeping at most `max_tokens` (> 0).
// Errors name the file when it is empty or shorter than `min_tokens`.
torch::Tensor text_file_tokens(const std::string& path, const io::Tokenizer& tok, int64_t max_tokens = 0,
                               int64_t min_tokens = 2);

}  // namespace hyla::eval
