#define PCRE2_CODE_UNIT_WIDTH 8
#include "hyla/io/bpe_regex.h"

#include <pcre2.h>

#include "hyla/util/error.h"

namespace hyla::io::bpe {
namespace {

// Oniguruma's Unicode \s: Zs, Zl, Zp and U+0009..U+000D, U+0085 (= White_Space).
constexpr std::string_view kSpaceSet =
    "\\x{9}-\\x{d}\\x{20}\\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}"
    "\\x{202f}\\x{205f}\\x{3000}";
// Oniguruma's Unicode \w: Letter | Mark | Number | Connector_Punctuation.
constexpr std::string_view kWordSet = "\\p{L}\\p{M}\\p{N}\\p{Pc}";
constexpr std::string_view kHexSet = "0-9a-fA-F";

// Per-thread match state shared by all patterns: an ovector of one pair is enough, since
// only the whole match is used, and a JIT stack big enough for long whitespace runs.
struct MatchState {
  pcre2_match_data* data = pcre2_match_data_create(1, nullptr);
  pcre2_match_context* context = pcre2_match_context_create(nullptr);
  pcre2_jit_stack* stack = pcre2_jit_stack_create(64 * 1024, 8 * 1024 * 1024, nullptr);
  MatchState() { pcre2_jit_stack_assign(context, nullptr, stack); }
  ~MatchState() {
    pcre2_jit_stack_free(stack);
    pcre2_match_context_free(context);
    pcre2_match_data_free(data);
  }
};
MatchState& match_state() {
  thread_local MatchState state;
  return state;
}

std::string pcre2_message(int code) {
  PCRE2_UCHAR buf[256];
  pcre2_get_error_message(code, buf, sizeof buf);
  return reinterpret_cast<const char*>(buf);
}

}  // namespace

std::string OnigRegex::to_pcre2(std::string_view p, std::string_view where) {
  std::string out;
  bool in_class = false;
  for (size_t i = 0; i < p.size(); ++i) {
    char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {
      char e = p[++i];
      std::string_view set = e == 's' || e == 'S' ? kSpaceSet
                             : e == 'w' || e == 'W' ? kWordSet
                             : e == 'h' || e == 'H' ? kHexSet
                                                    : std::string_view{};
      bool negated = e == 'S' || e == 'W' || e == 'H';
      if (set.empty()) {
        out += c;
        out += e;
      } else if (!in_class) {
        out += negated ? "[^" : "[";
        out += set;
        out += ']';
      } else {
        HYLA_CHECK(!negated, "{}: `\\{}` inside a character class is not supported", where, e);
        out += set;
      }
      continue;
    }
    if (in_class && c == '[') {
      HYLA_CHECK(i + 1 < p.size() && p[i + 1] == ':',
                 "{}: nested character classes (Oniguruma set operations) are not supported",
                 where);
      size_t close = p.find(":]", i + 2);
      HYLA_CHECK(close != std::string_view::npos, "{}: unterminated POSIX class", where);
      out.append(p.substr(i, close + 2 - i));
      i = close + 1;
      continue;
    }
    HYLA_CHECK(!(in_class && c == '&' && i + 1 < p.size() && p[i + 1] == '&'),
               "{}: character class intersection `&&` is not supported", where);
    if (!in_class && c == '[') {
      in_class = true;
      out += c;
      if (i + 1 < p.size() && p[i + 1] == '^') out += p[++i];
      if (i + 1 < p.size() && p[i + 1] == ']') out += "\\]", ++i;  // leading ] is literal
      continue;
    }
    if (in_class && c == ']') in_class = false;
    out += c;
  }
  return out;
}

OnigRegex::OnigRegex(std::string_view pattern, std::string_view where) : where_(where) {
  std::string translated = to_pcre2(pattern, where);
  int err = 0;
  PCRE2_SIZE err_at = 0;
  // MULTILINE: Oniguruma's (Ruby) ^ and $ always match at line breaks.
  auto* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()), translated.size(),
                             PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE, &err, &err_at, nullptr);
  HYLA_CHECK(code, "{}: cannot compile regex `{}` at offset {}: {}", where, pattern, err_at,
             pcre2_message(err));
  code_ = code;
  jit_ = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
}

OnigRegex::~OnigRegex() { pcre2_code_free(static_cast<pcre2_code*>(code_)); }

bool OnigRegex::search(std::string_view text, size_t from, size_t& start, size_t& end) const {
  auto* code = static_cast<pcre2_code*>(code_);
  auto subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  MatchState& st = match_state();
  int rc = jit_ ? pcre2_jit_match(code, subject, text.size(), from, 0, st.data, st.context)
                : PCRE2_ERROR_JIT_STACKLIMIT;
  if (rc == PCRE2_ERROR_JIT_STACKLIMIT)  // interpreter fallback: heap-based backtracking
    rc = pcre2_match(code, subject, text.size(), from, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, st.data,
                     st.context);
  if (rc == PCRE2_ERROR_NOMATCH) return false;
  HYLA_CHECK(rc >= 0, "{}: regex match failed: {}", where_, pcre2_message(rc));
  const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(st.data);
  start = ov[0];
  end = ov[1] < ov[0] ? ov[0] : ov[1];  // \K can put the start past the end
  return true;
}

size_t OnigRegex::next_char(std::string_view text, size_t pos) {
  if (pos >= text.size()) return pos + 1;
  uint8_t lead = uint8_t(text[pos]);
  return pos + (lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4);
}

std::string regex_escape(std::string_view literal) {
  std::string out;
  for (char c : literal) {
    if (std::string_view("\\^$.|?*+()[]{}-/").find(c) != std::string_view::npos) out += '\\';
    out += c;
  }
  return out;
}

}  // namespace hyla::io::bpe
