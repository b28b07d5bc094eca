// Multi-query associative recall (eval.md §MQAR; Zoology, Arora et al. 2023,
// `zoology/data/multiquery_ar.py`), in token space.
//
// Sequence of `seq_len` inputs: k1 v1 … kN vN, then a query region of seq_len − 2N
// positions cut into (seq_len − 2N)/2 two-token slots. Every key appears exactly once,
// at the first position of a slot drawn without replacement with P(slot g) ∝
// a·g^(a−1), g = 1 … (seq_len − 2N)/2 (g counts slots from the end of the key–value
// block, so queries cluster near it). The label at a query key's position is its
// value; everything else is unscored. Keys come from [1, V/2), values from [V/2, V),
// distinct within a sample. Filler (every other position of the query region) is
// random tokens from [0, V) as Zoology's default `random_non_queries=True`, or 0.
// All ids are shifted by `token_offset`, so the task can live in a reserved range of a
// language model's vocabulary.
#pragma once
#include <cstdint>

#include "hyla/data/synthetic_sample.h"

namespace hyla::data {

struct MqarConfig {
  int64_t vocab_size = 8192;  // V
  int64_t seq_len = 64;       // L (even, 4N <= L, V > L)
  int64_t num_kv_pairs = 4;   // N
  double power_a = 0.01;      // a
  bool random_filler = true;  // false: filler is token 0 (the paper grid)
  int32_t token_offset = 0;   // id of MQAR token 0 in the model's vocabulary
};

void validate(const MqarConfig& c);

// Deterministic in (config, seed). `answers` holds the values as decimal ids
// (with the offset applied), in key order.
SyntheticSample mqar_sample(const MqarConfig& c, uint64_t seed);

// Zoology's standard grid (Fig. 2): (L, N) pairs.
inline constexpr int64_t kMqarGrid[][2] = {{64, 4}, {128, 8}, {256, 16}, {512, 64}};

}  // namespace hyla::data
