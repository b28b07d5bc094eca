// Needle in a haystack (eval.md §NIAH, RULER's niah_single_1 by default): the prompt from
// data/synthetic_niah, greedy decoding, score = RULER's string_match_all on the output
// (partial credit when several values are asked for), mean per length.
#pragma once
#include <string>
#include <vector>

#include "hyla/data/synthetic_niah.h"
#include "hyla/eval/recall.h"
#include "hyla/io/tokenizer.h"
#include "hyla/model/decoder.h"

namespace hyla::eval {

// `new_tokens` generated per prompt: RULER generates 128 (and sizes the haystack so that
// they fit, c.reserve_tokens); the answer (a 7-digit number) comes first, so a smaller
// budget scores the same unless the model rambles before answering. `haystack` null: the
// repeated noise sentences (niah_single_1); otherwise prose sentences (niah_single_2).
RecallResult eval_niah(model::CausalLM& m, const io::Tokenizer& tok, const data::NiahConfig& c, int64_t samples,
                       uint64_t seed, int64_t new_tokens = 128, const std::vector<std::string>* haystack = nullptr);

}  // namespace hyla::eval
