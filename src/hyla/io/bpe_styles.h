// The three byte-level BPE layouts hyla writes (and the pre-tokenization each uses):
//   gpt2:   ByteLevel with GPT-2's regex;
//   llama3: Split(Llama-3 regex, Isolated) + ByteLevel(use_regex=false), ignore_merges;
//   qwen2:  NFC + Split(Qwen2 regex, Isolated) + ByteLevel(use_regex=false).
// Also writes a trained vocabulary as a tokenizer.json that PyPI `tokenizers` loads.
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "hyla/io/bpe_pretokenizer.h"
#include "hyla/io/bpe_unicode.h"

namespace hyla::io::bpe {

inline constexpr std::string_view kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
inline constexpr std::string_view kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

enum class BpeStyle { Gpt2, Llama3, Qwen2 };
BpeStyle parse_bpe_style(std::string_view name);  // "gpt2" | "llama3" | "qwen2"

PreTokenizer style_pre_tokenizer(BpeStyle style);
std::unique_ptr<Normalizer> style_normalizer(BpeStyle style);  // null if none

// A trained byte-level BPE: token bytes by id (special tokens hold their text) and the
// merges in rank order as (left id, right id).
struct BpeVocab {
  std::vector<std::string> tokens;
  std::vector<std::pair<int32_t, int32_t>> merges;
  std::vector<int32_t> special_ids;
};

// tokenizer.json text for `vocab` in `style`; with `bos`, encode(add_special) prepends it.
std::string bpe_tokenizer_json(const BpeVocab& vocab, BpeStyle style,
                               const std::optional<std::string>& bos);

}  // namespace hyla::io::bpe
