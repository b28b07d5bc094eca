// Builds the synthetic recall source a recipe's [data.synthetic] asks for, mixed into
// teacher training so teachers learn in-context retrieval (issue: MQAR, passkey, NIAH):
//   [data.synthetic]
//   mqar = 1.0            # relative weights of the generators
//   passkey = 1.0
//   niah = 0.5
//   mqar_kv_pairs = [4, 8, 16]   # MQAR difficulty, drawn per sample
//   mqar_vocab = 2048            # MQAR token region (ids offset by mqar_offset)
//   mqar_offset = 1000
#pragma once
#include <nlohmann/json.hpp>

#include "hyla/data/batch_sampler.h"
#include "hyla/io/tokenizer.h"

namespace hyla::train {

data::SyntheticSource make_synthetic_source(const nlohmann::json& cfg, std::shared_ptr<io::Tokenizer> tok,
                                            std::shared_ptr<const data::TokenDataset> haystack_data,
                                            int64_t seq_len, int64_t vocab_size);

}  // namespace hyla::train
