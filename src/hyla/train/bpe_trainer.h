// Learns a byte-level BPE vocabulary from text. Words come from the style's own
// pre-tokenizer (so training sees the pieces encoding will see); each round merges the
// most frequent adjacent pair, ties going to the smaller (left id, right id), which makes
// the result independent of hashing and thread count. Pair counts are updated
// incrementally from the words that hold the merged pair, so a round costs only those.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "hyla/io/bpe_added_tokens.h"
#include "hyla/io/bpe_model.h"
#include "hyla/io/bpe_styles.h"

namespace hyla::train {

struct BpeTrainOptions {
  int64_t vocab_size = 8192;  // special tokens + 256 bytes + merges
  std::vector<std::string> special_tokens;
  io::bpe::BpeStyle style = io::bpe::BpeStyle::Gpt2;
  int64_t min_frequency = 2;  // stop when the best pair occurs fewer times
};

class BpeTrainer {
 public:
  explicit BpeTrainer(BpeTrainOptions options);
  // Counts the pre-tokenized words of `text` (special-token strings are cut out).
  void feed(std::string_view text);
  size_t unique_words() const { return counts_.size(); }
  io::bpe::BpeVocab train() const;

 private:
  BpeTrainOptions opt_;
  io::bpe::PreTokenizer pre_;
  std::unique_ptr<io::bpe::Normalizer> normalizer_;
  io::bpe::AddedTokenMatcher specials_;
  io::bpe::StringMap<int64_t> counts_;
};

}  // namespace hyla::train
