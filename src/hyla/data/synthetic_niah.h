// Needle in a haystack (eval.md §NIAH; RULER's niah_* tasks, NVIDIA/RULER
// `scripts/data/synthetic/niah.py`).
//
// Needles "One of the special magic numbers for {key} is: {value}." (key an
// adjective–noun pair, value a 7-digit number) are inserted at sentence boundaries of
// a haystack, at depths drawn from linspace(0, 100, 40) or at one chosen depth. The
// haystack is either the passkey noise sentences repeated (niah_single_1) or a run of
// sentences of real prose (niah_single_2: held-out corpus text). num_keys > num_queries
// adds distractor needles (niah_multikey), num_values > 1 several values per key
// (niah_multivalue), num_queries > 1 several keys asked at once (niah_multiquery).
// The haystack is the longest that keeps prompt + `reserve_tokens` (RULER: the 128
// generated tokens) within `length_tokens`. Score with string_match_all.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "hyla/data/synthetic_sample.h"

namespace hyla::data {

struct NiahConfig {
  int64_t length_tokens = 4096;
  int64_t num_keys = 1;     // distinct keys with needles (queried ones + distractors)
  int64_t num_values = 1;   // needles (values) per key
  int64_t num_queries = 1;  // keys asked about, <= num_keys
  double depth = -1;        // in [0, 1]; < 0: each needle at a random linspace(0,100,40) depth
  int64_t reserve_tokens = 128;
  bool add_special = true;
};

// `haystack` null: the repeated noise sentences; otherwise sentences of prose (taken as
// one contiguous run from a random start, wrapping around).
SyntheticSample niah_sample(const NiahConfig& c, const io::Tokenizer& tok,
                            const std::vector<std::string>* haystack, uint64_t seed);

// Sentences of a prepared corpus split (e.g. the held-out "val" split), decoded with
// the corpus tokenizer, for essay-style haystacks; stops after `max_sentences`.
class TokenDataset;
std::vector<std::string> haystack_from_corpus(const TokenDataset& data, const io::Tokenizer& tok,
                                              int64_t max_sentences = 200000);

// Splits prose into sentences at . ! ? followed by white space (closing quotes and
// brackets stay with their sentence), collapsing white space runs to one space.
std::vector<std::string> split_sentences(std::string_view text);

}  // namespace hyla::data
