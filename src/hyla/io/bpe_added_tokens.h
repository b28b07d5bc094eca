// Added tokens (tokenizer.json "added_tokens"): strings matched in the text before
// pre-tokenization, as PyPI `tokenizers`' AddedVocabulary does. Tokens with
// normalized=false are found in the raw text first; the text between them is normalized,
// then tokens with normalized=true are found in it. Matching is leftmost-longest (their
// Aho-Corasick MatchKind::LeftmostLongest); lstrip/rstrip swallow the Unicode whitespace
// beside a match; single_word drops a match touching a word character.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "hyla/io/bpe_unicode.h"

namespace hyla::io::bpe {

struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool single_word = false, lstrip = false, rstrip = false, normalized = true, special = false;
};

// A span of the searched text: an added token (id >= 0) or plain text (id == -1).
struct TextPiece {
  size_t start, end;
  int32_t id;
};

class AddedTokenMatcher {
 public:
  // `tokens` in tokenizers' matching order (special ones first); patterns of normalized
  // tokens are themselves normalized with `normalizer` (may be null).
  void build(const std::vector<AddedToken>& tokens, const Normalizer* normalizer);
  // Covers `text` with pieces, matching the normalized=false set (`normalized_set` false)
  // or the normalized=true set. Empty plain pieces are not emitted.
  void split(std::string_view text, bool normalized_set, std::vector<TextPiece>& out) const;
  bool empty(bool normalized_set) const { return tries_[normalized_set].nodes.size() <= 1; }

 private:
  struct Node {
    std::vector<std::pair<uint8_t, int32_t>> next;  // sorted by byte
    int32_t token = -1;                              // index into tokens_
  };
  struct Trie {
    std::vector<Node> nodes{Node{}};
    std::array<int32_t, 256> root{};  // first byte -> node, -1 if none
  };
  void insert(Trie& trie, std::string_view pattern, int32_t token);
  // Longest pattern starting at text[i]: returns its token index and length, or -1.
  int32_t longest_at(const Trie& trie, std::string_view text, size_t i, size_t& len) const;

  std::vector<AddedToken> tokens_;
  std::array<Trie, 2> tries_;
};

}  // namespace hyla::io::bpe
