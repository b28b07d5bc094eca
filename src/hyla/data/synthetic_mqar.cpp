#include "hyla/data/synthetic_mqar.h"

#include <cmath>

#include "hyla/data/random.h"
#include "hyla/util/error.h"

namespace hyla::data {

void validate(const MqarConfig& c) {
  HYLA_CHECK(c.seq_len > 0 && c.seq_len % 2 == 0, "MQAR: seq_len {} must be even and positive",
             c.seq_len);
  HYLA_CHECK(c.vocab_size > c.seq_len, "MQAR: vocab_size {} must exceed seq_len {}",
             c.vocab_size, c.seq_len);
  HYLA_CHECK(c.num_kv_pairs > 0 && 4 * c.num_kv_pairs <= c.seq_len,
             "MQAR: need 0 < 4·num_kv_pairs <= seq_len (N = {}, L = {})", c.num_kv_pairs,
             c.seq_len);
  HYLA_CHECK(c.num_kv_pairs < c.vocab_size / 2,
             "MQAR: {} distinct keys do not fit the key range [1, {})", c.num_kv_pairs,
             c.vocab_size / 2);
  HYLA_CHECK(c.power_a > 0, "MQAR: power_a must be positive");
  HYLA_CHECK(c.token_offset >= 0, "MQAR: token_offset must be non-negative");
}

namespace {

// `k` distinct slots from [0, n) with P(slot s) ∝ a·(s+1)^(a−1), drawn one at a time
// from the remaining weight (sampling without replacement, as numpy's
// `choice(replace=False, p=...)`).
std::vector<int64_t> draw_query_slots(Rng& rng, int64_t n, int64_t k, double a) {
  std::vector<double> w(n);
  for (int64_t g = 1; g <= n; ++g) w[g - 1] = a * std::pow(static_cast<double>(g), a - 1);
  std::vector<int64_t> out;
  for (int64_t i = 0; i < k; ++i) {
    double total = 0;
    for (double x : w) total += x;
    double u = rng.uniform() * total, acc = 0;
    int64_t pick = -1;
    for (int64_t s = 0; s < n; ++s) {
      if (w[s] == 0) continue;
      pick = s;  // the last live slot catches rounding at the top end
      acc += w[s];
      if (u < acc) break;
    }
    w[pick] = 0;
    out.push_back(pick);
  }
  return out;
}

}  // namespace

SyntheticSample mqar_sample(const MqarConfig& c, uint64_t seed) {
  validate(c);
  Rng rng(seed);
  const int64_t n = c.num_kv_pairs, L = c.seq_len, half = c.vocab_size / 2;
  std::vector<int64_t> keys = rng.sample_distinct(1, half, n);
  std::vector<int64_t> values = rng.sample_distinct(half, c.vocab_size, n);
  const int64_t slots = (L - 2 * n) / 2;
  std::vector<int64_t> gaps = draw_query_slots(rng, slots, n, c.power_a);

  std::vector<int64_t> seq(L, -1);  // -1: filler, decided below
  for (int64_t i = 0; i < n; ++i) {
    seq[2 * i] = keys[i];
    seq[2 * i + 1] = values[i];
  }
  SyntheticSample s;
  s.target.assign(L, c.token_offset);
  s.mask.assign(L, 0);
  for (int64_t i = 0; i < n; ++i) {
    int64_t pos = 2 * n + 2 * gaps[i];
    seq[pos] = keys[i];
    s.target[pos] = static_cast<int32_t>(values[i] + c.token_offset);
    s.mask[pos] = 1;
    s.answers.push_back(std::to_string(values[i] + c.token_offset));
  }
  s.input.resize(L);
  for (int64_t p = 0; p < L; ++p) {
    int64_t t = seq[p] >= 0 ? seq[p] : (c.random_filler ? int64_t(rng.below(c.vocab_size)) : 0);
    s.input[p] = static_cast<int32_t>(t + c.token_offset);
  }
  s.prompt_len = L;
  return s;
}

}  // namespace hyla::data
