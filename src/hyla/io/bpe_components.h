// The small tokenizer.json components around the BPE model: the normalizer, the
// post-processor (special tokens around one sequence: TemplateProcessing,
// RobertaProcessing, BertProcessing, ByteLevel, Sequence) and the added-token list with
// tokenizers' id assignment.
#pragma once
#include <memory>
#include <optional>
#include <vector>

#include "hyla/io/bpe_added_tokens.h"
#include "hyla/io/bpe_json.h"
#include "hyla/io/bpe_model.h"
#include "hyla/io/bpe_unicode.h"

namespace hyla::io::bpe {

// Null for `"normalizer": null`.
std::unique_ptr<Normalizer> parse_normalizer(const JsonAt& field);

// What `encode(text, add_special_tokens=True)` puts around the ids of one sequence.
struct SpecialWrap {
  std::vector<int32_t> prefix, suffix;
};
SpecialWrap parse_post_processor(const JsonAt& field);

// Checks the decoder is ByteLevel (the only one a byte-level BPE needs).
void check_decoder(const JsonAt& field);

// The added tokens as tokenizers' deserializer registers them, in matching order
// (special tokens first) and with the ids it assigns (the model's id for a token already
// in the vocab); a token whose id differs from the file's is logged.
std::vector<AddedToken> parse_added_tokens(const JsonAt& field, const BpeModel& model);

}  // namespace hyla::io::bpe
