// safetensors (https://github.com/huggingface/safetensors) reading and writing.
//
// Format: 8-byte little-endian header length N, N bytes of JSON
// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}},
// then the data buffer; offsets are relative to the buffer start.
//
// Reading is memory-mapped and lazy: opening parses and validates the header only;
// a tensor's bytes are touched when it is loaded. Every malformed input raises
// hyla::Error naming the file (and tensor), never crashes.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "hyla/io/safetensors_header.h"

namespace hyla::io {

// TensorInfo, SafetensorsHeader, parse_safetensors_header, safetensors_dtype_size:
// see safetensors_header.h (no LibTorch types there, so the fuzzer builds without it).

// Torch dtype of a safetensors dtype name; throws naming `label` for unknown names and for
// dtypes LibTorch cannot hold unpacked (F4, F6_*).
torch::ScalarType to_torch_dtype(const std::string& dtype, const std::string& label);
// Safetensors dtype name of a torch dtype; throws for types safetensors cannot store.
std::string from_torch_dtype(torch::ScalarType t);

// One memory-mapped .safetensors file.
class SafetensorsFile {
 public:
  static std::shared_ptr<SafetensorsFile> open(const std::filesystem::path& path);
  ~SafetensorsFile();

  const std::filesystem::path& path() const { return path_; }
  std::vector<std::string> names() const;
  bool has(const std::string& name) const;
  const TensorInfo& info(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return header_.metadata; }
  // A CPU tensor viewing the mapped bytes (kept alive by the returned tensor), or a
  // copy if `copy` is true or the bytes are not aligned for the dtype. The mapping is
  // private: writing into a view never changes the file. Throws naming the file and
  // tensor if absent, of a dtype LibTorch cannot hold, or (BOOL) holding bytes not 0/1.
  torch::Tensor load(const std::string& name, bool copy = false) const;

 private:
  SafetensorsFile() = default;
  std::filesystem::path path_;
  SafetensorsHeader header_;
  std::map<std::string, size_t> index_;
  const uint8_t* map_ = nullptr;
  size_t map_size_ = 0;
  std::shared_ptr<void> keepalive_;
};

// A checkpoint directory: either one `model.safetensors` or shards listed in
// `model.safetensors.index.json` ({"weight_map": {name: file}}), or a single file path.
// As in transformers, model.safetensors wins when both exist. With an index, every tensor
// of every listed shard is served; a shard that is missing, a name listed twice, a name
// its shard lacks, or a tensor stored in two shards is an error naming the checkpoint.
class TensorStore {
 public:
  static TensorStore open(const std::filesystem::path& path);
  std::vector<std::string> names() const;
  bool has(const std::string& name) const;
  const TensorInfo& info(const std::string& name) const;
  // Throws "checkpoint <dir>: missing tensor <name>" when absent.
  torch::Tensor load(const std::string& name) const;
  const std::filesystem::path& root() const { return root_; }

 private:
  std::filesystem::path root_;
  std::map<std::string, std::shared_ptr<SafetensorsFile>> by_name_;
};

using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

// Writes one file atomically (temp file in the same directory, fsync, rename).
void save_safetensors(const std::filesystem::path& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// Writes `dir/model.safetensors`, or, when the total exceeds `max_shard_bytes`,
// `model-0000i-of-0000n.safetensors` shards plus `model.safetensors.index.json`
// (HF layout, huggingface_hub's greedy split), each atomically; then removes files of an
// earlier save that the new layout does not use. Returns the files written.
std::vector<std::filesystem::path> save_checkpoint_tensors(
    const std::filesystem::path& dir, const NamedTensors& tensors,
    uint64_t max_shard_bytes = 5ull << 30,
    const std::map<std::string, std::string>& metadata = {{"format", "pt"}});

}  // namespace hyla::io
