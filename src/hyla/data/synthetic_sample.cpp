#include "hyla/data/synthetic_sample.h"

#include <algorithm>
#include <cctype>

#include "hyla/util/error.h"

namespace hyla::data {

void set_prompt_and_answer(SyntheticSample& s, std::vector<int32_t> prompt_tokens,
                           const std::vector<int32_t>& answer_tokens) {
  HYLA_CHECK(!prompt_tokens.empty() && !answer_tokens.empty(),
             "synthetic sample needs a non-empty prompt and answer");
  s.prompt_len = static_cast<int64_t>(prompt_tokens.size());
  std::vector<int32_t> seq = std::move(prompt_tokens);
  seq.insert(seq.end(), answer_tokens.begin(), answer_tokens.end());
  s.input.assign(seq.begin(), seq.end() - 1);
  s.target.assign(seq.begin() + 1, seq.end());
  s.mask.assign(s.input.size(), 0);
  // target[i] = seq[i+1] is an answer token when i + 1 >= prompt_len.
  for (size_t i = s.prompt_len - 1; i < s.mask.size(); ++i) s.mask[i] = 1;
}

int64_t largest_fitting(const std::function<int64_t(int64_t)>& tokens, int64_t budget,
                        int64_t hi) {
  if (tokens(0) > budget) return -1;
  int64_t lo = 0;  // invariant: tokens(lo) <= budget
  while (hi > lo && tokens(hi) <= budget) {  // grow until the bracket holds the answer
    lo = hi;
    hi *= 2;
  }
  while (hi - lo > 1) {
    int64_t mid = lo + (hi - lo) / 2;
    if (tokens(mid) <= budget) lo = mid;
    else hi = mid;
  }
  return lo;
}

bool passkey_correct(std::string_view output, int64_t key) {
  size_t i = 0;
  while (i < output.size() && !std::isdigit(static_cast<unsigned char>(output[i]))) ++i;
  if (i == output.size()) return false;
  size_t j = i;
  while (j < output.size() && std::isdigit(static_cast<unsigned char>(output[j]))) ++j;
  std::string_view digits = output.substr(i, j - i);
  if (digits.size() > 18) return false;
  return std::stoll(std::string(digits)) == key;
}

double string_match_all(std::string_view output, const std::vector<std::string>& refs) {
  if (refs.empty()) return 0;
  auto lower = [](std::string_view s) {
    std::string r(s);
    std::transform(r.begin(), r.end(), r.begin(), [](unsigned char c) { return std::tolower(c); });
    return r;
  };
  std::string out = lower(output);
  int hits = 0;
  for (auto& r : refs) hits += out.find(lower(r)) != std::string::npos;
  return static_cast<double>(hits) / static_cast<double>(refs.size());
}

}  // namespace hyla::data
