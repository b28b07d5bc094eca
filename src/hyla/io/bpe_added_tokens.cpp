#include "hyla/io/bpe_added_tokens.h"

#include <algorithm>

namespace hyla::io::bpe {
namespace {

// The character that ends text[0, end): its start, decoded into `c`.
size_t char_before(std::string_view text, size_t end, char32_t& c) {
  size_t i = end - 1;
  while (i > 0 && (uint8_t(text[i]) & 0xC0) == 0x80) --i;
  decode_utf8(text, i, c);
  return i;
}

bool ends_with_word(std::string_view text, size_t end) {
  if (end == 0) return false;
  char32_t c;
  char_before(text, end, c);
  return is_word_char(c);
}

bool starts_with_word(std::string_view text, size_t start) {
  if (start >= text.size()) return false;
  char32_t c;
  decode_utf8(text, start, c);
  return is_word_char(c);
}

// Start of the whitespace run that ends at `end` (tokenizers: regex `\s*$` on text[..end]).
size_t trailing_space_start(std::string_view text, size_t end) {
  while (end > 0) {
    char32_t c;
    size_t i = char_before(text, end, c);
    if (!is_white_space(c)) break;
    end = i;
  }
  return end;
}

// End of the whitespace run that starts at `start` (regex `^\s*` on text[start..]).
size_t leading_space_end(std::string_view text, size_t start) {
  while (start < text.size()) {
    char32_t c;
    int n = decode_utf8(text, start, c);
    if (!is_white_space(c)) break;
    start += size_t(n);
  }
  return start;
}

}  // namespace

void AddedTokenMatcher::insert(Trie& trie, std::string_view pattern, int32_t token) {
  int32_t node = 0;
  for (size_t k = 0; k < pattern.size(); ++k) {
    uint8_t b = uint8_t(pattern[k]);
    auto& next = trie.nodes[node].next;
    auto it = std::lower_bound(next.begin(), next.end(), std::make_pair(b, int32_t(-1)));
    if (it != next.end() && it->first == b) {
      node = it->second;
      continue;
    }
    int32_t child = int32_t(trie.nodes.size());
    next.insert(it, {b, child});  // `next` is not used after the push_back below
    trie.nodes.emplace_back();
    if (node == 0) trie.root[b] = child;
    node = child;
  }
  // Equal patterns: the first one added wins, as in Aho-Corasick's leftmost-longest.
  if (trie.nodes[node].token < 0) trie.nodes[node].token = token;
}

void AddedTokenMatcher::build(const std::vector<AddedToken>& tokens,
                              const Normalizer* normalizer) {
  tokens_ = tokens;
  for (auto& trie : tries_) {
    trie = Trie{};
    trie.root.fill(-1);
  }
  std::string normalized;
  for (size_t t = 0; t < tokens_.size(); ++t) {
    const AddedToken& tok = tokens_[t];
    if (tok.content.empty()) continue;
    if (tok.normalized && normalizer) {
      normalizer->apply(tok.content, normalized);
      insert(tries_[1], normalized, int32_t(t));
    } else {
      insert(tries_[tok.normalized], tok.content, int32_t(t));
    }
  }
}

int32_t AddedTokenMatcher::longest_at(const Trie& trie, std::string_view text, size_t i,
                                      size_t& len) const {
  int32_t best = -1;
  int32_t node = trie.root[uint8_t(text[i])];
  size_t k = i + 1;
  while (node >= 0) {
    if (trie.nodes[node].token >= 0) best = trie.nodes[node].token, len = k - i;
    if (k == text.size()) break;
    const auto& next = trie.nodes[node].next;
    uint8_t b = uint8_t(text[k]);
    auto it = std::lower_bound(next.begin(), next.end(), std::make_pair(b, int32_t(-1)));
    node = it != next.end() && it->first == b ? it->second : -1;
    ++k;
  }
  return best;
}

void AddedTokenMatcher::split(std::string_view text, bool normalized_set,
                              std::vector<TextPiece>& out) const {
  out.clear();
  const Trie& trie = tries_[normalized_set];
  size_t start_offset = 0, i = 0;
  while (i < text.size()) {
    if (trie.root[uint8_t(text[i])] < 0) {
      ++i;
      continue;
    }
    size_t len = 0;
    int32_t t = longest_at(trie, text, i, len);
    if (t < 0) {
      ++i;
      continue;
    }
    size_t start = i, stop = i + len;
    i = stop;  // the automaton resumes after the raw match, whatever strip does below
    const AddedToken& tok = tokens_[size_t(t)];
    if (tok.single_word && (ends_with_word(text, start) || starts_with_word(text, stop)))
      continue;
    if (tok.lstrip) start = std::max(trailing_space_start(text, start), start_offset);
    if (tok.rstrip) stop = leading_space_end(text, stop);
    if (start_offset < start) out.push_back({start_offset, start, -1});
    out.push_back({start, stop, tok.id});
    start_offset = stop;
  }
  if (start_offset < text.size()) out.push_back({start_offset, text.size(), -1});
}

}  // namespace hyla::io::bpe
