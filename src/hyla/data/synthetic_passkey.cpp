#include "hyla/data/synthetic_passkey.h"

#include <cmath>

#include "hyla/data/random.h"
#include "hyla/io/tokenizer.h"
#include "hyla/util/error.h"

namespace hyla::data {
namespace {

constexpr std::string_view kTask =
    "There is an important info hidden inside a lot of irrelevant text. Find it and "
    "memorize them. I will quiz you about the important information there.";
constexpr std::string_view kFiller[] = {"The grass is green.", "The sky is blue.",
                                        "The sun is yellow.", "Here we go.",
                                        "There and back again."};
constexpr std::string_view kQuestion = "What is the pass key? The pass key is";

// The first `n` sentences of the endlessly repeated filler block.
std::string filler(int64_t n) {
  std::string out;
  for (int64_t i = 0; i < n; ++i) {
    if (i) out += ' ';
    out += kFiller[i % 5];
  }
  return out;
}

std::string prompt_text(int64_t key, int64_t before, int64_t after) {
  return fmt::format("{}\n{}\nThe pass key is {}. Remember it. {} is the pass key.\n{}\n{}",
                     kTask, filler(before), key, key, filler(after), kQuestion);
}

}  // namespace

SyntheticSample passkey_sample(const PasskeyConfig& c, const io::Tokenizer& tok, uint64_t seed) {
  HYLA_CHECK(c.max_key >= 1, "passkey: max_key must be >= 1");
  HYLA_CHECK(c.depth <= 1, "passkey: depth {} must be in [0, 1] (or negative for random)",
             c.depth);
  Rng rng(seed);
  const int64_t key = rng.range(1, c.max_key);
  const double u = rng.uniform();
  const int64_t budget = c.length_tokens - c.reserve_tokens;
  // Filler size n is found on the prompt with all filler after the needle; moving
  // sentences before it changes the count by at most a token or two, fixed below.
  auto tokens_for = [&](int64_t n) {
    return static_cast<int64_t>(tok.encode(prompt_text(key, 0, n), c.add_special).size());
  };
  int64_t per_block = std::max<int64_t>(1, tok.encode(filler(5)).size());
  int64_t n = largest_fitting(tokens_for, budget, std::max<int64_t>(1, 5 * budget / per_block));
  HYLA_CHECK(n >= 0, "passkey: length {} tokens is too short for the task text",
             c.length_tokens);
  // Random depth: uniform over the n + 1 sentence boundaries (the reference draws its
  // prefix length uniformly in characters).
  auto build = [&](int64_t n_filler, SyntheticSample& s) {
    int64_t before = c.depth < 0 ? std::min<int64_t>(static_cast<int64_t>(u * (n_filler + 1)), n_filler)
                                 : static_cast<int64_t>(std::llround(c.depth * n_filler));
    s.prompt = prompt_text(key, before, n_filler - before);
    s.depth = n_filler > 0 ? static_cast<double>(before) / n_filler : 0;
    return tok.encode(s.prompt, c.add_special);
  };
  SyntheticSample s;
  std::vector<int32_t> ids = build(n, s);
  bool shrunk = false;
  while (static_cast<int64_t>(ids.size()) > budget && n > 0) {
    ids = build(--n, s);
    shrunk = true;
  }
  while (!shrunk) {  // splitting the filler can save a token or two: use them
    SyntheticSample bigger;
    std::vector<int32_t> more = build(n + 1, bigger);
    if (static_cast<int64_t>(more.size()) > budget) break;
    ++n;
    s = std::move(bigger);
    ids = std::move(more);
  }
  s.answer_text = fmt::format(" {}.", key);
  s.answers = {std::to_string(key)};
  set_prompt_and_answer(s, std::move(ids), tok.encode(s.answer_text));
  return s;
}

int64_t passkey_key(const SyntheticSample& s) {
  HYLA_CHECK(s.answers.size() == 1, "not a passkey sample");
  return std::stoll(s.answers[0]);
}

}  // namespace hyla::data
