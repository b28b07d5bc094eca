// A regular expression that matches like the Oniguruma engine PyPI `tokenizers` uses for
// Split pre-tokenizers, run on PCRE2 (UTF + UCP, JIT). Oniguruma's Unicode `\s`, `\w`
// and `\h` differ from PCRE2's, so the pattern is rewritten before compiling: `\s` becomes
// the White_Space class (PCRE2 would also take U+180E), `\w` becomes letters, marks,
// numbers and connector punctuation (PCRE2 10.42 leaves out marks), `\h` a hex digit.
#pragma once
#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

namespace hyla::io::bpe {

class OnigRegex {
 public:
  // `where` names the origin for errors, e.g. "tokenizer.json: pre_tokenizer.pattern.Regex".
  OnigRegex(std::string_view pattern, std::string_view where);
  ~OnigRegex();
  OnigRegex(const OnigRegex&) = delete;
  OnigRegex& operator=(const OnigRegex&) = delete;

  // Calls on_match(start, end) for each successive non-overlapping match in `text`
  // (valid UTF-8), with the Oniguruma crate's rule for empty matches: one right after
  // the previous match is skipped and the search moves on one character.
  template <typename F>
  void find_iter(std::string_view text, F&& on_match) const {
    size_t pos = 0, last_end = SIZE_MAX;
    while (pos <= text.size()) {
      size_t s, e;
      if (!search(text, pos, s, e)) return;
      if (s == e && e == last_end) {
        pos = next_char(text, pos);
        continue;
      }
      on_match(s, e);
      pos = last_end = e;
    }
  }

  // Translates Oniguruma syntax to the PCRE2 equivalent (exposed for tests).
  static std::string to_pcre2(std::string_view onig, std::string_view where);

 private:
  bool search(std::string_view text, size_t from, size_t& start, size_t& end) const;
  static size_t next_char(std::string_view text, size_t pos);
  void* code_ = nullptr;  // pcre2_code_8
  bool jit_ = false;
  std::string where_;
};

// Escapes `literal` so it matches itself (tokenizer.json Split `pattern: {String: ...}`).
std::string regex_escape(std::string_view literal);

}  // namespace hyla::io::bpe
