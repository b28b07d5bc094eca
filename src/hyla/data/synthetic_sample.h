// What every synthetic recall generator returns (MQAR, passkey, NIAH), for training
// mixes and for evaluation alike, plus the scoring rules eval.md gives.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace hyla::io {
class Tokenizer;
}

namespace hyla::data {

struct SyntheticSample {
  // Next-token form: the model reads `input`; at positions where `mask` is 1 its
  // prediction is scored against `target` (same length as `input`).
  std::vector<int32_t> input, target;
  std::vector<uint8_t> mask;
  // Generation form (passkey/NIAH): `input[0:prompt_len]` is the prompt, `prompt` its
  // text; `answers` are the reference strings; `answer_text` the tokens after the prompt.
  int64_t prompt_len = 0;
  std::string prompt, answer_text;
  std::vector<std::string> answers;
  double depth = 0;  // where the needle sits, as a fraction of the filler (passkey/NIAH)
};

// Builds the next-token form from prompt tokens and answer tokens: sequence =
// prompt ++ answer, input = sequence[:-1], target = sequence[1:], mask on answer tokens.
void set_prompt_and_answer(SyntheticSample& s, std::vector<int32_t> prompt_tokens,
                           const std::vector<int32_t>& answer_tokens);

// Largest n in [0, hi] with tokens(n) <= budget, for tokens() non-decreasing in n;
// -1 when even tokens(0) exceeds the budget. Used to size a haystack to a token length.
int64_t largest_fitting(const std::function<int64_t(int64_t)>& tokens, int64_t budget,
                        int64_t hi);

// Passkey score (Landmark Attention run_test.py): the first integer in `output`
// equals `key`.
bool passkey_correct(std::string_view output, int64_t key);
// RULER string_match_all: the fraction of `refs` found, case-insensitively, in `output`.
double string_match_all(std::string_view output, const std::vector<std::string>& refs);

}  // namespace hyla::data
