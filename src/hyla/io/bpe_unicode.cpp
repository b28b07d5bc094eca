#include "hyla/io/bpe_unicode.h"

#include <unicode/bytestream.h>
#include <unicode/normalizer2.h>
#include <unicode/uchar.h>

#include <cstring>

#include "hyla/util/error.h"

namespace hyla::io::bpe {
namespace {

struct ByteMap {
  std::array<char32_t, 256> to_char{};
  std::array<int16_t, 324> to_byte{};  // characters U+0000..U+0143
  ByteMap() {
    to_byte.fill(-1);
    int next = 0;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      to_char[b] = printable ? char32_t(b) : char32_t(256 + next++);
      to_byte[to_char[b]] = int16_t(b);
    }
  }
};
const ByteMap& byte_map() {
  static const ByteMap m;
  return m;
}

// Second-byte range of a well-formed UTF-8 sequence by lead byte (Unicode Table 3-7);
// later continuation bytes are always 0x80..0xBF. Returns the sequence length, 0 if
// `lead` cannot start a sequence.
int utf8_shape(uint8_t lead, uint8_t& lo, uint8_t& hi) {
  lo = 0x80, hi = 0xBF;
  if (lead < 0x80) return 1;
  if (lead < 0xC2) return 0;
  if (lead < 0xE0) return 2;
  if (lead < 0xF0) {
    if (lead == 0xE0) lo = 0xA0;
    if (lead == 0xED) hi = 0x9F;
    return 3;
  }
  if (lead < 0xF5) {
    if (lead == 0xF0) lo = 0x90;
    if (lead == 0xF4) hi = 0x8F;
    return 4;
  }
  return 0;
}

// Number of bytes at text[i] that form a valid sequence (its length), or, for an
// invalid one, minus the length of its maximal invalid subpart.
int utf8_step(std::string_view text, size_t i) {
  uint8_t lo, hi;
  int n = utf8_shape(uint8_t(text[i]), lo, hi);
  if (n == 0) return -1;
  for (int k = 1; k < n; ++k) {
    if (i + k >= text.size()) return -k;
    uint8_t c = uint8_t(text[i + k]);
    if (c < (k == 1 ? lo : 0x80) || c > (k == 1 ? hi : 0xBF)) return -k;
  }
  return n;
}

}  // namespace

char32_t byte_to_char(uint8_t b) { return byte_map().to_char[b]; }

int char_to_byte(char32_t c) {
  return c < byte_map().to_byte.size() ? byte_map().to_byte[c] : -1;
}

std::string bytes_to_vocab_text(std::string_view raw) {
  std::string out;
  out.reserve(raw.size() * 2);
  for (char ch : raw) append_utf8(out, byte_to_char(uint8_t(ch)));
  return out;
}

bool vocab_text_to_bytes(std::string_view text, std::string& raw) {
  raw.clear();
  if (!is_valid_utf8(text)) return false;
  for (size_t i = 0; i < text.size();) {
    char32_t c;
    i += decode_utf8(text, i, c);
    int b = char_to_byte(c);
    if (b < 0) return false;
    raw.push_back(char(b));
  }
  return true;
}

void append_utf8(std::string& out, char32_t c) {
  if (c < 0x80) {
    out.push_back(char(c));
  } else if (c < 0x800) {
    out.push_back(char(0xC0 | (c >> 6)));
    out.push_back(char(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out.push_back(char(0xE0 | (c >> 12)));
    out.push_back(char(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(char(0x80 | (c & 0x3F)));
  } else {
    out.push_back(char(0xF0 | (c >> 18)));
    out.push_back(char(0x80 | ((c >> 12) & 0x3F)));
    out.push_back(char(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(char(0x80 | (c & 0x3F)));
  }
}

int decode_utf8(std::string_view text, size_t i, char32_t& c) {
  auto b = [&](size_t k) { return char32_t(uint8_t(text[i + k])); };
  uint8_t lead = uint8_t(text[i]);
  if (lead < 0x80) return c = lead, 1;
  if (lead < 0xE0) return c = ((b(0) & 0x1F) << 6) | (b(1) & 0x3F), 2;
  if (lead < 0xF0) return c = ((b(0) & 0x0F) << 12) | ((b(1) & 0x3F) << 6) | (b(2) & 0x3F), 3;
  c = ((b(0) & 0x07) << 18) | ((b(1) & 0x3F) << 12) | ((b(2) & 0x3F) << 6) | (b(3) & 0x3F);
  return 4;
}

size_t valid_utf8_prefix(std::string_view text) {
  size_t i = 0, n = text.size();
  while (i < n) {
    if (i + 8 <= n) {  // fast path: eight ASCII bytes at once
      uint64_t w;
      std::memcpy(&w, text.data() + i, 8);
      if ((w & 0x8080808080808080ull) == 0) {
        i += 8;
        continue;
      }
    }
    int step = utf8_step(text, i);
    if (step < 0) return i;
    i += size_t(step);
  }
  return n;
}

std::string utf8_lossy(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() + 8);
  size_t i = 0;
  while (i < bytes.size()) {
    size_t ok = valid_utf8_prefix(bytes.substr(i));
    out.append(bytes.substr(i, ok));
    i += ok;
    if (i == bytes.size()) break;
    int step = utf8_step(bytes, i);
    i += size_t(-step);
    out.append("\xEF\xBF\xBD");
  }
  return out;
}

bool is_white_space(char32_t c) { return u_hasBinaryProperty(UChar32(c), UCHAR_WHITE_SPACE); }

bool is_word_char(char32_t c) {
  UChar32 u = UChar32(c);
  if (u_hasBinaryProperty(u, UCHAR_ALPHABETIC) || u_hasBinaryProperty(u, UCHAR_JOIN_CONTROL))
    return true;
  switch (u_charType(u)) {
    case U_NON_SPACING_MARK:
    case U_ENCLOSING_MARK:
    case U_COMBINING_SPACING_MARK:
    case U_DECIMAL_DIGIT_NUMBER:
    case U_CONNECTOR_PUNCTUATION:
      return true;
    default:
      return false;
  }
}

Normalizer::Normalizer(std::vector<Form> forms) : forms_(std::move(forms)) {
  for (Form f : forms_) {
    UErrorCode status = U_ZERO_ERROR;
    const icu::Normalizer2* n = nullptr;
    switch (f) {
      case Form::NFC: n = icu::Normalizer2::getNFCInstance(status); break;
      case Form::NFD: n = icu::Normalizer2::getNFDInstance(status); break;
      case Form::NFKC: n = icu::Normalizer2::getNFKCInstance(status); break;
      case Form::NFKD: n = icu::Normalizer2::getNFKDInstance(status); break;
    }
    HYLA_CHECK(U_SUCCESS(status) && n, "ICU: cannot load normalization data ({})",
               u_errorName(status));
    impl_.push_back(n);
  }
}

Normalizer::~Normalizer() = default;

void Normalizer::apply(std::string_view text, std::string& out) const {
  out.assign(text);
  bool ascii = true;
  for (char ch : text) ascii &= uint8_t(ch) < 0x80;
  if (ascii) return;  // every normalization form leaves ASCII unchanged
  for (const void* p : impl_) {
    auto* n = static_cast<const icu::Normalizer2*>(p);
    UErrorCode status = U_ZERO_ERROR;
    if (n->isNormalizedUTF8(icu::StringPiece(out.data(), int32_t(out.size())), status) &&
        U_SUCCESS(status))
      continue;
    std::string next;
    icu::StringByteSink<std::string> sink(&next);
    status = U_ZERO_ERROR;
    n->normalizeUTF8(0, icu::StringPiece(out.data(), int32_t(out.size())), sink, nullptr, status);
    HYLA_CHECK(U_SUCCESS(status), "ICU normalization failed: {}", u_errorName(status));
    out = std::move(next);
  }
}

}  // namespace hyla::io::bpe
