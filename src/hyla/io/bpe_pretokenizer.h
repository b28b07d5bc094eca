// The pre-tokenizer of a byte-level BPE tokenizer.json: zero or more Split steps (a regex
// with a delimiter behaviour), then ByteLevel (optional prefix space, optional GPT-2 regex).
// Each step re-splits every piece the previous step produced, as PyPI `tokenizers`'
// PreTokenizedString::split does; empty pieces are dropped. The byte -> character mapping
// of ByteLevel is not applied here: the BPE model works on raw bytes (see bpe_model.h).
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "hyla/io/bpe_json.h"
#include "hyla/io/bpe_regex.h"

namespace hyla::io::bpe {

// GPT-2's pre-tokenization regex, used by ByteLevel when use_regex is true.
inline constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

enum class SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

// A piece of the text being split: a regex match or the text between two matches.
struct SplitSegment {
  size_t start, end;
  bool is_match;
};

class WordSink {
 public:
  virtual ~WordSink() = default;
  virtual void word(std::string_view bytes) = 0;
};

class PreTokenizer {
 public:
  // Reads the `pre_tokenizer` field: ByteLevel, or a Sequence of Splits ending in ByteLevel.
  static PreTokenizer from_json(const JsonAt& field);
  PreTokenizer() = default;
  PreTokenizer(PreTokenizer&&) = default;
  PreTokenizer& operator=(PreTokenizer&&) = default;

  void add_split(std::unique_ptr<OnigRegex> regex, SplitBehavior behavior, bool invert);
  void set_byte_level(bool add_prefix_space, bool use_regex);

  // Emits the pre-tokens of `piece` (valid UTF-8) in order.
  void split(std::string_view piece, WordSink& sink) const;

 private:
  struct Step {
    std::unique_ptr<OnigRegex> regex;  // null for a ByteLevel step without regex
    SplitBehavior behavior = SplitBehavior::Isolated;
    bool invert = false;
    bool add_prefix_space = false;  // only on the ByteLevel step
  };
  using Scratch = std::vector<std::vector<SplitSegment>>;
  void run(size_t step, std::string_view piece, WordSink& sink, Scratch& scratch) const;
  void split_step(size_t step, std::string_view piece, WordSink& sink, Scratch& scratch) const;
  std::vector<Step> steps_;
};

}  // namespace hyla::io::bpe
