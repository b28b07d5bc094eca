// Recall accuracy of a model on the synthetic tasks the teachers are trained with
// (eval.md): MQAR scored per queried value (argmax at each scored position, as in
// zoology), passkey by greedy generation of 10 tokens (Landmark Attention's rule: the
// first integer in the output equals the key).
#pragma once
#include <nlohmann/json.hpp>

#include "hyla/data/synthetic_mqar.h"
#include "hyla/data/synthetic_passkey.h"
#include "hyla/io/tokenizer.h"
#include "hyla/model/decoder.h"

namespace hyla::eval {

struct RecallResult {
  std::string task;
  int64_t samples = 0, scored = 0, correct = 0;
  // Partial credit summed over scored items (NIAH's string_match_all); equals `correct`
  // for all-or-nothing tasks.
  double credit = 0;
  double accuracy() const { return scored ? credit / double(scored) : 0.0; }
  nlohmann::json to_json() const;
};

RecallResult eval_mqar(model::CausalLM& m, const data::MqarConfig& c, int64_t samples, uint64_t seed,
                       int64_t batch = 8);
RecallResult eval_passkey(model::CausalLM& m, const io::Tokenizer& tok, const data::PasskeyConfig& c,
                          int64_t samples, uint64_t seed);

}  // namespace hyla::eval
