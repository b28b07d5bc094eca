// Passkey retrieval (eval.md §Passkey; Landmark Attention, Mohtashami & Jaggi 2023,
// `llama/run_test.py`): a number hidden in repeated filler text, asked for at the end.
//
// Prompt lines, joined by "\n": the task line; filler before the needle; the needle
// "The pass key is {k}. Remember it. {k} is the pass key."; filler after it; "What is
// the pass key? The pass key is". As in the reference, each filler part is the start of
// the endlessly repeated block (here cut at sentence boundaries, not characters). The
// total filler is the most that keeps prompt tokens + `reserve_tokens` within
// `length_tokens` of the model's tokenizer.
#pragma once
#include <cstdint>

#include "hyla/data/synthetic_sample.h"

namespace hyla::data {

struct PasskeyConfig {
  int64_t length_tokens = 1024;
  double depth = -1;           // needle position in [0, 1] of the filler; < 0: uniform
  int64_t max_key = 50000;     // k uniform in [1, max_key]
  int64_t reserve_tokens = 10; // room for the 10 generated tokens
  bool add_special = true;     // prompt encoded with the tokenizer's BOS etc.
};

// `answers` = {"k"}; `answer_text` = " k." (what a model should continue with).
SyntheticSample passkey_sample(const PasskeyConfig& c, const io::Tokenizer& tok, uint64_t seed);

// The key of a sample, parsed back from `answers` (for scoring with passkey_correct).
int64_t passkey_key(const SyntheticSample& s);

}  // namespace hyla::data
