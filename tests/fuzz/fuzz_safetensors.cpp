// libFuzzer target: parse_safetensors_header on arbitrary bytes (the whole "file").
// It must return a header whose promises hold for the input, or throw hyla::Error;
// any other exception, a sanitizer report, or a broken promise is a crash.
// Built without LibTorch: `make fuzz` (see the HYLA_FUZZ block of CMakeLists.txt).
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "hyla/io/safetensors_header.h"
#include "hyla/util/error.h"

namespace {

void require(bool ok) {
  if (!ok) std::abort();
}

// Accepted headers: the header bytes are one JSON object; each tensor's byte count matches
// dtype x shape, and sorted by offset the tensors tile the data buffer exactly.
void check(const hyla::io::SafetensorsHeader& h, const uint8_t* data, size_t size) {
  require(h.data_start >= 8 && h.data_start <= size);
  // The whole header was JSON: an object, no NUL, nothing but whitespace around it.
  size_t lo = 8, hi = h.data_start;
  auto space = [](uint8_t c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (lo < hi && space(data[lo])) ++lo;
  while (hi > lo && space(data[hi - 1])) --hi;
  require(hi - lo >= 2 && data[lo] == '{' && data[hi - 1] == '}');
  require(std::find(data + 8, data + h.data_start, uint8_t(0)) == data + h.data_start);
  const uint64_t data_size = size - h.data_start;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (const auto& t : h.tensors) {
    const unsigned bits = hyla::io::safetensors_dtype_bits(t.dtype);
    require(bits != 0 && t.begin <= t.end && t.end <= data_size);
    unsigned __int128 nbits = bits;
    for (int64_t d : t.shape) {
      require(d >= 0);
      nbits *= uint64_t(d);
    }
    require(nbits == (unsigned __int128)(t.end - t.begin) * 8);
    ranges.emplace_back(t.begin, t.end);
  }
  std::sort(ranges.begin(), ranges.end());
  uint64_t at = 0;
  for (auto [b, e] : ranges) {
    require(b == at);
    at = e;
  }
  require(at == data_size);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto h = hyla::io::parse_safetensors_header(std::span<const uint8_t>(data, size), "fuzz.safetensors");
    check(h, data, size);
  } catch (const hyla::Error& e) {
    require(e.what()[0] != '\0');
    (void)nlohmann::json(std::string(e.what())).dump();  // throws (a crash) on invalid UTF-8
  }
  return 0;
}
