// Unicode pieces a byte-level BPE tokenizer needs: GPT-2's byte <-> printable-character
// map, UTF-8 validation and lossy repair (as Rust's String::from_utf8_lossy does), the
// character classes that PyPI `tokenizers` uses around added tokens, and Unicode
// normalization forms (ICU) for the `normalizer` field of tokenizer.json.
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace hyla::io::bpe {

// GPT-2's bytes_to_unicode: printable Latin-1 bytes map to themselves, the other 68
// bytes to U+0100.. in byte order, so every byte is one visible character in vocab files.
char32_t byte_to_char(uint8_t b);
// Inverse of byte_to_char; -1 for a character that is not the image of a byte.
int char_to_byte(char32_t c);
// Maps each byte of `raw` to its character, UTF-8 encoded (the vocab-file spelling).
std::string bytes_to_vocab_text(std::string_view raw);
// Inverse: false if some character of `text` is not the image of a byte.
bool vocab_text_to_bytes(std::string_view text, std::string& raw);

void append_utf8(std::string& out, char32_t c);
// Decodes the character at text[i] (text must be valid UTF-8); returns its length.
int decode_utf8(std::string_view text, size_t i, char32_t& c);
// Length of the valid UTF-8 prefix of `text`.
size_t valid_utf8_prefix(std::string_view text);
inline bool is_valid_utf8(std::string_view text) { return valid_utf8_prefix(text) == text.size(); }
// Replaces each maximal invalid subsequence by U+FFFD, like Rust's from_utf8_lossy.
std::string utf8_lossy(std::string_view bytes);

// Unicode White_Space (Rust regex `\s`), and Rust regex `\w` (Alphabetic, marks, decimal
// digits, connector punctuation, join controls): the tests tokenizers applies to the
// text around an added token with lstrip/rstrip/single_word.
bool is_white_space(char32_t c);
bool is_word_char(char32_t c);

// One Unicode normalization form, or a sequence of them (tokenizer.json "normalizer").
class Normalizer {
 public:
  enum class Form { NFC, NFD, NFKC, NFKD };
  explicit Normalizer(std::vector<Form> forms);
  ~Normalizer();
  // Normalizes `text` (valid UTF-8) into `out`; pure ASCII is copied as is.
  void apply(std::string_view text, std::string& out) const;
  bool empty() const { return forms_.empty(); }

 private:
  std::vector<Form> forms_;
  std::vector<const void*> impl_;  // icu::Normalizer2 instances, owned by ICU
};

}  // namespace hyla::io::bpe
