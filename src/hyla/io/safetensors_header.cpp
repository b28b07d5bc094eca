// Header parsing for safetensors, free of LibTorch (the fuzzer links only this file).
#include "hyla/io/safetensors_header.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <numeric>
#include <set>

#include "hyla/util/error.h"

namespace hyla::io {
namespace {

using Json = nlohmann::ordered_json;  // keeps the file's tensor order

// The reference's Dtype enum, in its declaration order (safetensors 0.8), with bit widths.
struct DtypeDesc {
  const char* name;
  unsigned bits;
};
constexpr DtypeDesc kDtypes[] = {
    {"BOOL", 8},     {"F4", 4},       {"F6_E2M3", 6},     {"F6_E3M2", 6},
    {"U8", 8},       {"I8", 8},       {"F8_E5M2", 8},     {"F8_E4M3", 8},
    {"F8_E8M0", 8},  {"F8_E4M3FNUZ", 8}, {"F8_E5M2FNUZ", 8}, {"I16", 16},
    {"U16", 16},     {"F16", 16},     {"BF16", 16},       {"I32", 32},
    {"U32", 32},     {"F32", 32},     {"C64", 64},        {"F64", 64},
    {"I64", 64},     {"U64", 64},
};

// A header is a flat object of small objects; anything deeper is not safetensors, and
// the bound keeps a hostile header from exhausting the stack in later recursion.
constexpr int kMaxJsonDepth = 16;

// Names come from the file: quote them, and keep a hostile 90 MB name out of messages.
std::string show(const std::string& s) {
  constexpr size_t kMax = 160;
  Json j = s.size() > kMax ? s.substr(0, kMax) + "..." : s;
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

// JSON parser messages quote the offending raw bytes; keep messages printable ASCII.
std::string printable(std::string_view s) {
  std::string out;
  for (unsigned char c : s) out += (c >= 0x20 && c < 0x7f) ? std::string(1, char(c)) : fmt::format("\\x{:02x}", c);
  return out;
}

uint64_t read_u64_le(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// Parses the header text, rejecting a key given twice in one object (nlohmann, like
// serde_json for maps, would silently keep the last one).
Json parse_json(std::span<const uint8_t> text, const std::string& label) {
  struct Frame {
    std::set<std::string> keys;
    std::string last;
  };
  std::vector<Frame> frames;
  auto on_event = [&](int depth, Json::parse_event_t ev, Json& parsed) -> bool {
    using E = Json::parse_event_t;
    if (ev == E::object_start || ev == E::array_start) {
      HYLA_CHECK(depth < kMaxJsonDepth, "file {}: header JSON nests deeper than {} levels",
                 label, kMaxJsonDepth);
      if (ev == E::object_start) frames.emplace_back();
    } else if (ev == E::key) {
      const auto& key = parsed.get_ref<const std::string&>();
      if (!frames.back().keys.insert(key).second) {
        if (frames.size() == 1) fail("file {}: tensor {} is listed twice in the header", label, show(key));
        fail("file {}: key {} appears twice inside the entry for {}", label, show(key),
             show(frames[frames.size() - 2].last));
      }
      frames.back().last = key;
    } else if (ev == E::object_end) {
      frames.pop_back();
    }
    return true;
  };
  const char* begin = reinterpret_cast<const char*>(text.data());
  // nlohmann's lexer takes a NUL byte for the end of input and would ignore what
  // follows; JSON allows no raw NUL anywhere, so refuse it first.
  const void* nul = std::memchr(begin, 0, text.size());
  HYLA_CHECK(nul == nullptr, "file {}: header is not valid JSON: NUL byte at header offset {}", label,
             static_cast<const char*>(nul) - begin);
  try {
    return Json::parse(begin, begin + text.size(), on_event);
  } catch (const Json::exception& e) {
    fail("file {}: header is not valid JSON: {}", label, printable(e.what()));
  }
}

uint64_t read_uint(const Json& x, const std::string& where, const char* field) {
  if (x.is_number_unsigned()) return x.get<uint64_t>();
  if (x.is_number_integer()) fail("{}: {} holds the negative number {}", where, field, x.get<int64_t>());
  fail("{}: {} holds {} (a JSON {}), expected a non-negative integer", where, field,
       x.dump(-1, ' ', false, Json::error_handler_t::replace), x.type_name());
}

const Json& field(const Json& entry, const char* key, const std::string& where) {
  auto it = entry.find(key);
  HYLA_CHECK(it != entry.end(), "{}: entry has no \"{}\" (needs dtype, shape, data_offsets)", where, key);
  return *it;
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// One tensor entry: dtype, shape and data_offsets, checked against each other and
// against the size of the data buffer (reference: Metadata::validate).
TensorInfo read_entry(const std::string& name, const Json& v, const std::string& label,
                      uint64_t data_size) {
  const std::string where = fmt::format("file {}: tensor {}", label, show(name));
  HYLA_CHECK(v.is_object(), "{}: entry is a JSON {}, expected an object with dtype, shape, data_offsets",
             where, v.type_name());
  TensorInfo t;
  t.name = name;
  const Json& dtype = field(v, "dtype", where);
  HYLA_CHECK(dtype.is_string(), "{}: dtype is a JSON {}, expected a string", where, dtype.type_name());
  t.dtype = dtype.get<std::string>();
  const unsigned bits = safetensors_dtype_bits(t.dtype);
  HYLA_CHECK(bits != 0, "{}: unknown dtype {}", where, show(t.dtype));

  const Json& shape = field(v, "shape", where);
  HYLA_CHECK(shape.is_array(), "{}: shape is a JSON {}, expected an array", where, shape.type_name());
  uint64_t numel = 1;
  bool overflow = false;
  for (const Json& d : shape) {
    uint64_t dim = read_uint(d, where, "shape");
    HYLA_CHECK(dim <= uint64_t(INT64_MAX), "{}: shape dimension {} is too large", where, dim);
    t.shape.push_back(int64_t(dim));
    overflow = overflow || (dim != 0 && numel > UINT64_MAX / dim);
    numel *= dim;
  }
  HYLA_CHECK(!overflow && numel <= UINT64_MAX / bits, "{}: shape {} has too many elements to address",
             where, shape_str(t.shape));
  const uint64_t nbits = numel * bits;
  HYLA_CHECK(nbits % 8 == 0, "{}: {} elements of {} ({} bits each) do not fill whole bytes", where,
             numel, t.dtype, bits);

  const Json& offsets = field(v, "data_offsets", where);
  HYLA_CHECK(offsets.is_array() && offsets.size() == 2,
             "{}: data_offsets is {}, expected an array [begin, end]", where,
             offsets.dump(-1, ' ', false, Json::error_handler_t::replace).substr(0, 200));
  t.begin = read_uint(offsets[0], where, "data_offsets");
  t.end = read_uint(offsets[1], where, "data_offsets");
  HYLA_CHECK(t.begin <= t.end, "{}: data_offsets [{}, {}] begin after they end", where, t.begin, t.end);
  HYLA_CHECK(t.end <= data_size, "{}: data_offsets [{}, {}] run past the data buffer ({} bytes after the header)",
             where, t.begin, t.end, data_size);
  HYLA_CHECK(t.end - t.begin == nbits / 8,
             "{}: dtype {} shape {} needs {} bytes but data_offsets [{}, {}] span {}", where, t.dtype,
             shape_str(t.shape), nbits / 8, t.begin, t.end, t.end - t.begin);
  return t;
}

void read_metadata(const Json& v, const std::string& label, std::map<std::string, std::string>& out) {
  if (v.is_null()) return;  // the reference reads `null` as "no metadata"
  HYLA_CHECK(v.is_object(), "file {}: __metadata__ is a JSON {}, expected an object of strings", label,
             v.type_name());
  for (auto it = v.begin(); it != v.end(); ++it) {
    HYLA_CHECK(it.value().is_string(), "file {}: __metadata__ key {} holds a JSON {}, expected a string",
               label, show(it.key()), it.value().type_name());
    out[it.key()] = it.value().get<std::string>();
  }
}

// Sorted by offset, tensors must tile the data buffer exactly: the reference rejects
// gaps, overlaps and trailing bytes, which also rules out a lying header aliasing data.
void check_layout(const std::vector<TensorInfo>& tensors, uint64_t data_size, const std::string& label) {
  std::vector<size_t> order(tensors.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return std::pair(tensors[a].begin, tensors[a].end) < std::pair(tensors[b].begin, tensors[b].end);
  });
  uint64_t at = 0;
  const TensorInfo* prev = nullptr;
  for (size_t i : order) {
    const TensorInfo& t = tensors[i];
    HYLA_CHECK(t.begin >= at, "file {}: tensor {} (bytes [{}, {})) overlaps tensor {} (bytes [{}, {}))",
               label, show(t.name), t.begin, t.end, show(prev->name), prev->begin, prev->end);
    HYLA_CHECK(t.begin == at, "file {}: {} bytes before tensor {} (at byte {}) belong to no tensor; "
               "the data buffer must be packed", label, t.begin - at, show(t.name), t.begin);
    at = t.end;
    prev = &t;
  }
  HYLA_CHECK(at == data_size, "file {}: the data buffer has {} bytes but the tensors cover only {}; "
             "the trailing {} bytes belong to no tensor", label, data_size, at, data_size - at);
}

}  // namespace

unsigned safetensors_dtype_bits(const std::string& dtype) {
  for (const auto& d : kDtypes)
    if (dtype == d.name) return d.bits;
  return 0;
}

size_t safetensors_dtype_size(const std::string& dtype, const std::string& label) {
  unsigned bits = safetensors_dtype_bits(dtype);
  HYLA_CHECK(bits != 0, "{}: unknown safetensors dtype {}", label, show(dtype));
  HYLA_CHECK(bits % 8 == 0, "{}: dtype {} packs {}-bit elements, not whole bytes", label, dtype, bits);
  return bits / 8;
}

int safetensors_dtype_rank(const std::string& dtype) {
  for (size_t i = 0; i < std::size(kDtypes); ++i)
    if (dtype == kDtypes[i].name) return int(i);
  return -1;
}

SafetensorsHeader parse_safetensors_header(std::span<const uint8_t> bytes, const std::string& label) {
  HYLA_CHECK(bytes.size() >= 8, "file {}: {} bytes is too short for a safetensors file "
             "(it starts with an 8-byte header length)", label, bytes.size());
  const uint64_t n = read_u64_le(bytes.data());
  HYLA_CHECK(n <= kSafetensorsMaxHeaderBytes, "file {}: header length {} exceeds the {} byte limit "
             "(corrupt, or not a safetensors file)", label, n, kSafetensorsMaxHeaderBytes);
  HYLA_CHECK(n <= bytes.size() - 8, "file {}: header length {} runs past the end of the file ({} bytes)",
             label, n, bytes.size());
  const Json root = parse_json(bytes.subspan(8, n), label);
  HYLA_CHECK(root.is_object(), "file {}: header is a JSON {}, expected an object", label, root.type_name());

  SafetensorsHeader h;
  h.data_start = 8 + n;
  const uint64_t data_size = bytes.size() - h.data_start;
  for (auto it = root.begin(); it != root.end(); ++it) {
    if (it.key() == "__metadata__")
      read_metadata(it.value(), label, h.metadata);
    else
      h.tensors.push_back(read_entry(it.key(), it.value(), label, data_size));
  }
  check_layout(h.tensors, data_size, label);
  return h;
}

}  // namespace hyla::io
