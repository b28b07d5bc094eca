// The safetensors header: parsing and validation with no LibTorch types, so the
// libFuzzer target (tests/fuzz/fuzz_safetensors.cpp) builds without LibTorch.
//
// Validation follows the reference implementation (huggingface/safetensors,
// `SafeTensors::read_metadata` + `Metadata::validate`): header length <= 100 MB and
// inside the file; the header is one JSON object; every entry has a known dtype, a shape
// of non-negative integers and `data_offsets` [begin, end] with
// end - begin == numel * element size; sorted by offset, the tensors tile the data
// buffer from byte 0 to the end of the file with no gap and no overlap.
// hyla is stricter in two places: a name (or an entry's key) given twice is an error
// (the reference silently keeps the last), and JSON nesting is bounded.
#pragma once
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

namespace hyla::io {

// Same limit as the reference reader: a larger length is a corrupt file, not a model.
inline constexpr uint64_t kSafetensorsMaxHeaderBytes = 100'000'000;

// The parsed, validated description of one tensor in a file.
struct TensorInfo {
  std::string name;
  std::string dtype;             // "F32", "BF16", ... as written in the file
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;   // byte range inside the data buffer
};

// `file_size` is the size of the whole file; `label` names it in errors.
struct SafetensorsHeader {
  std::vector<TensorInfo> tensors;  // in file (JSON) order
  std::map<std::string, std::string> metadata;
  uint64_t data_start = 0;          // 8 + N
};

// Parses and validates the header of a whole file held in `file_bytes` (the data buffer
// is not read, only its size is checked). Throws hyla::Error naming `label`.
SafetensorsHeader parse_safetensors_header(std::span<const uint8_t> file_bytes,
                                           const std::string& label);

// Bits per element of a safetensors dtype name (4 for F4, 6 for F6_*), or 0 if unknown.
unsigned safetensors_dtype_bits(const std::string& dtype);
// Element size in bytes of a safetensors dtype name; throws on an unknown or
// sub-byte (F4, F6_*) name.
size_t safetensors_dtype_size(const std::string& dtype, const std::string& label);
// Position in the reference's Dtype enum; writers order tensors by it (descending)
// so every tensor's offset is a multiple of its element size.
int safetensors_dtype_rank(const std::string& dtype);

}  // namespace hyla::io
