// safetensors files: memory-mapped reading, sharded checkpoints, atomic writing.
#include "hyla/io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <regex>
#include <set>

#include "hyla/io/atomic_file.h"
#include "hyla/util/error.h"

namespace hyla::io {
namespace fs = std::filesystem;
static_assert(std::endian::native == std::endian::little,
              "safetensors stores little-endian data; views of the mapping assume a little-endian host");

namespace {

struct DtypePair {
  const char* name;
  torch::ScalarType type;
};
// F4 and F6_* have no unpacked LibTorch type and are absent here.
const DtypePair kTorchDtypes[] = {
    {"BOOL", torch::kBool},           {"U8", torch::kByte},
    {"I8", torch::kChar},             {"F8_E5M2", torch::kFloat8_e5m2},
    {"F8_E4M3", torch::kFloat8_e4m3fn}, {"F8_E8M0", torch::kFloat8_e8m0fnu},
    {"F8_E4M3FNUZ", torch::kFloat8_e4m3fnuz}, {"F8_E5M2FNUZ", torch::kFloat8_e5m2fnuz},
    {"I16", torch::kShort},           {"U16", torch::kUInt16},
    {"F16", torch::kHalf},            {"BF16", torch::kBFloat16},
    {"I32", torch::kInt},             {"U32", torch::kUInt32},
    {"F32", torch::kFloat},           {"C64", torch::kComplexFloat},
    {"F64", torch::kDouble},          {"I64", torch::kLong},
    {"U64", torch::kUInt64},
};

class FdGuard {
 public:
  explicit FdGuard(int fd) : fd_(fd) {}
  ~FdGuard() { if (fd_ >= 0) ::close(fd_); }
  FdGuard(const FdGuard&) = delete;
  FdGuard& operator=(const FdGuard&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// A BOOL byte other than 0 or 1 is not a valid C++ bool: reject it rather than hand
// LibTorch undefined values.
void check_bool_bytes(const uint8_t* p, size_t n, const std::string& where) {
  for (size_t i = 0; i < n; ++i)
    HYLA_CHECK(p[i] <= 1, "{}: BOOL element {} holds byte {}, expected 0 or 1", where, i, unsigned(p[i]));
}

}  // namespace

torch::ScalarType to_torch_dtype(const std::string& dtype, const std::string& label) {
  for (const auto& d : kTorchDtypes)
    if (dtype == d.name) return d.type;
  HYLA_CHECK(safetensors_dtype_bits(dtype) == 0, "{}: dtype {} (packed sub-byte) is not supported by hyla",
             label, dtype);
  fail("{}: unknown safetensors dtype \"{}\"", label, dtype);
}

std::string from_torch_dtype(torch::ScalarType t) {
  for (const auto& d : kTorchDtypes)
    if (t == d.type) return d.name;
  fail("torch dtype {} has no safetensors equivalent", c10::toString(t));
}

// ---------------------------------------------------------------- reading

std::shared_ptr<SafetensorsFile> SafetensorsFile::open(const fs::path& path) {
  const std::string label = path.string();
  FdGuard fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  HYLA_CHECK(fd.get() >= 0, "file {}: cannot open: {}", label, std::strerror(errno));
  struct stat st {};
  HYLA_CHECK(::fstat(fd.get(), &st) == 0, "file {}: cannot stat: {}", label, std::strerror(errno));
  HYLA_CHECK(S_ISREG(st.st_mode), "file {}: not a regular file", label);
  const size_t size = size_t(st.st_size);

  std::shared_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->path_ = path;
  if (size < 8) {  // mmap cannot map an empty file; the parser gives the error
    uint8_t small[8] = {};
    parse_safetensors_header(std::span<const uint8_t>(small, size), label);
  }
  // Private and writable: a loaded view may be modified in place (copy-on-write, the
  // file is never touched); NORESERVE so a large file does not count against commit.
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE, fd.get(), 0);
  HYLA_CHECK(p != MAP_FAILED, "file {}: cannot memory-map {} bytes: {}", label, size, std::strerror(errno));
  f->keepalive_ = std::shared_ptr<void>(p, [size](void* q) { ::munmap(q, size); });
  f->map_ = static_cast<const uint8_t*>(p);
  f->map_size_ = size;
  f->header_ = parse_safetensors_header(std::span<const uint8_t>(f->map_, size), label);
  for (size_t i = 0; i < f->header_.tensors.size(); ++i) f->index_.emplace(f->header_.tensors[i].name, i);
  return f;
}

SafetensorsFile::~SafetensorsFile() = default;

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> out;
  out.reserve(header_.tensors.size());
  for (const auto& t : header_.tensors) out.push_back(t.name);
  return out;
}

bool SafetensorsFile::has(const std::string& name) const { return index_.count(name) != 0; }

const TensorInfo& SafetensorsFile::info(const std::string& name) const {
  auto it = index_.find(name);
  HYLA_CHECK(it != index_.end(), "file {}: no tensor \"{}\"", path_.string(), name);
  return header_.tensors[it->second];
}

torch::Tensor SafetensorsFile::load(const std::string& name, bool copy) const {
  const TensorInfo& t = info(name);
  const std::string where = fmt::format("file {}: tensor \"{}\"", path_.string(), name);
  const auto dtype = to_torch_dtype(t.dtype, where);
  const auto opts = torch::TensorOptions().dtype(dtype).device(torch::kCPU);
  const uint8_t* p = map_ + header_.data_start + t.begin;
  const size_t nbytes = size_t(t.end - t.begin);
  if (dtype == torch::kBool) check_bool_bytes(p, nbytes, where);
  // A valid file may place a tensor at an offset that is not a multiple of its element
  // size (the reference writer sorts to avoid it, others may not): copy those.
  const bool aligned = reinterpret_cast<uintptr_t>(p) % c10::elementSize(dtype) == 0;
  if (copy || nbytes == 0 || !aligned) {
    torch::Tensor out = torch::empty(t.shape, opts);
    if (nbytes) std::memcpy(out.data_ptr(), p, nbytes);
    return out;
  }
  std::shared_ptr<void> keep = keepalive_;
  return torch::from_blob(const_cast<uint8_t*>(p), t.shape, [keep](void*) {}, opts);
}

// ---------------------------------------------------------------- checkpoints

namespace {

// weight_map of a model.safetensors.index.json, with a name given twice rejected
// (JSON parsers silently keep the last).
std::map<std::string, std::string> read_weight_map(const fs::path& index) {
  const std::string label = index.string();
  const std::string text = read_text_file(index);
  std::vector<std::set<std::string>> seen;
  auto on_event = [&](int depth, nlohmann::json::parse_event_t ev, nlohmann::json& parsed) -> bool {
    using E = nlohmann::json::parse_event_t;
    if (ev == E::object_start) seen.emplace_back();
    if (ev == E::object_end) seen.pop_back();
    if (ev == E::key && !seen.back().insert(parsed.get<std::string>()).second)
      fail("index {}: tensor \"{}\" is listed twice", label, parsed.get<std::string>());
    return true;
  };
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text, on_event);
  } catch (const nlohmann::json::exception& e) {
    fail("index {}: not valid JSON: {}", label, e.what());
  }
  HYLA_CHECK(j.is_object() && j.contains("weight_map") && j["weight_map"].is_object(),
             "index {}: expected a JSON object with a \"weight_map\" object", label);
  std::map<std::string, std::string> out;
  for (auto& [name, file] : j["weight_map"].items()) {
    HYLA_CHECK(file.is_string(), "index {}: weight_map entry for tensor \"{}\" is a JSON {}, expected a file name",
               label, name, file.type_name());
    const fs::path shard(file.get<std::string>());
    const bool inside = shard.is_relative() && !shard.empty() &&
                        std::none_of(shard.begin(), shard.end(), [](const fs::path& c) { return c == ".."; });
    HYLA_CHECK(inside, "index {}: shard \"{}\" of tensor \"{}\" is outside the checkpoint directory", label,
               shard.string(), name);
    out.emplace(name, shard.string());
  }
  HYLA_CHECK(!out.empty(), "index {}: weight_map is empty", label);
  return out;
}

}  // namespace

TensorStore TensorStore::open(const fs::path& path) {
  TensorStore s;
  s.root_ = path;
  std::error_code ec;
  auto add_file = [&s](const std::shared_ptr<SafetensorsFile>& f) {
    for (const auto& n : f->names()) {
      auto [it, fresh] = s.by_name_.emplace(n, f);
      HYLA_CHECK(fresh, "checkpoint {}: tensor \"{}\" is stored in both {} and {}", s.root_.string(), n,
                 it->second->path().filename().string(), f->path().filename().string());
    }
  };
  if (fs::is_regular_file(path, ec)) {
    add_file(SafetensorsFile::open(path));
    return s;
  }
  HYLA_CHECK(fs::is_directory(path, ec), "checkpoint {}: no such file or directory", path.string());
  // Like transformers: a single model.safetensors wins over an index.
  if (fs::is_regular_file(path / "model.safetensors", ec)) {
    add_file(SafetensorsFile::open(path / "model.safetensors"));
    return s;
  }
  const fs::path index = path / "model.safetensors.index.json";
  HYLA_CHECK(fs::is_regular_file(index, ec),
             "checkpoint {}: has neither model.safetensors nor model.safetensors.index.json", path.string());
  const auto weight_map = read_weight_map(index);
  std::map<std::string, std::shared_ptr<SafetensorsFile>> shards;
  for (const auto& [name, file] : weight_map) {
    if (shards.count(file)) continue;
    HYLA_CHECK(fs::is_regular_file(path / file, ec),
               "checkpoint {}: index lists shard {} (for tensor \"{}\"), which does not exist", path.string(),
               file, name);
    shards[file] = SafetensorsFile::open(path / file);
  }
  // Every tensor of every listed shard is served (transformers loads whole shards too);
  // the index must agree with the shards it names.
  for (const auto& [file, f] : shards) add_file(f);
  for (const auto& [name, file] : weight_map)
    HYLA_CHECK(shards.at(file)->has(name), "checkpoint {}: index maps tensor \"{}\" to {}, which does not contain it",
               path.string(), name, file);
  return s;
}

std::vector<std::string> TensorStore::names() const {
  std::vector<std::string> out;
  for (const auto& [n, f] : by_name_) out.push_back(n);
  return out;
}

bool TensorStore::has(const std::string& name) const { return by_name_.count(name) != 0; }

const TensorInfo& TensorStore::info(const std::string& name) const {
  auto it = by_name_.find(name);
  HYLA_CHECK(it != by_name_.end(), "checkpoint {}: missing tensor {}", root_.string(), name);
  return it->second->info(name);
}

torch::Tensor TensorStore::load(const std::string& name) const {
  auto it = by_name_.find(name);
  HYLA_CHECK(it != by_name_.end(), "checkpoint {}: missing tensor {}", root_.string(), name);
  return it->second->load(name);
}

// ---------------------------------------------------------------- writing

namespace {

struct Prepared {
  std::string name, dtype;
  torch::Tensor data;  // contiguous, CPU
};

uint64_t byte_size(const torch::Tensor& t) { return uint64_t(t.numel()) * t.element_size(); }

std::vector<Prepared> prepare(const fs::path& path, const NamedTensors& tensors) {
  std::set<std::string> names;
  std::vector<Prepared> out;
  for (const auto& [name, t] : tensors) {
    HYLA_CHECK(name != "__metadata__", "file {}: \"__metadata__\" is reserved and cannot name a tensor",
               path.string());
    HYLA_CHECK(names.insert(name).second, "file {}: tensor \"{}\" given twice", path.string(), name);
    HYLA_CHECK(t.defined(), "file {}: tensor \"{}\" is undefined", path.string(), name);
    HYLA_CHECK(t.layout() == torch::kStrided, "file {}: tensor \"{}\" is not dense", path.string(), name);
    torch::Tensor c = t.detach().to(torch::kCPU).resolve_conj().resolve_neg().contiguous();
    std::string dtype;
    try {
      dtype = from_torch_dtype(c.scalar_type());
    } catch (const Error& e) {
      fail("file {}: tensor \"{}\": {}", path.string(), name, e.what());
    }
    out.push_back({name, std::move(dtype), std::move(c)});
  }
  // The reference writer's order: dtype rank descending, then name. Element sizes then
  // never increase along the buffer, so every offset is a multiple of its element size.
  std::sort(out.begin(), out.end(), [](const Prepared& a, const Prepared& b) {
    int ra = safetensors_dtype_rank(a.dtype), rb = safetensors_dtype_rank(b.dtype);
    return ra != rb ? ra > rb : a.name < b.name;
  });
  return out;
}

// Header JSON in the reference's byte layout: compact, __metadata__ first, entries as
// {"dtype","shape","data_offsets"}, padded with spaces to a multiple of 8 bytes.
std::string header_json(const std::vector<Prepared>& tensors, const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json root = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json m = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) m[k] = v;
    root["__metadata__"] = std::move(m);
  }
  uint64_t offset = 0;
  for (const auto& p : tensors) {
    const uint64_t n = byte_size(p.data);
    nlohmann::ordered_json e = nlohmann::ordered_json::object();
    e["dtype"] = p.dtype;
    e["shape"] = p.data.sizes().vec();
    e["data_offsets"] = {offset, offset + n};
    root[p.name] = std::move(e);
    offset += n;
  }
  std::string s = root.dump();
  s.append((8 - s.size() % 8) % 8, ' ');
  return s;
}

}  // namespace

void save_safetensors(const fs::path& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata) {
  const auto prepared = prepare(path, tensors);
  const std::string header = header_json(prepared, metadata);
  write_file_atomic(path, [&](std::ostream& o) {
    uint8_t len[8];
    for (int i = 0; i < 8; ++i) len[i] = uint8_t(uint64_t(header.size()) >> (8 * i));
    o.write(reinterpret_cast<const char*>(len), 8);
    o.write(header.data(), std::streamsize(header.size()));
    for (const auto& p : prepared)
      o.write(static_cast<const char*>(p.data.data_ptr()), std::streamsize(byte_size(p.data)));
  });
}

namespace {

// Greedy packing in the caller's order, as huggingface_hub's split_torch_state_dict_into_shards:
// a tensor larger than the limit gets a shard of its own.
std::vector<NamedTensors> split_shards(const NamedTensors& tensors, uint64_t max_shard_bytes) {
  std::vector<NamedTensors> shards;
  NamedTensors current;
  uint64_t current_bytes = 0;
  for (const auto& nt : tensors) {
    const uint64_t n = nt.second.defined() ? byte_size(nt.second) : 0;
    if (n > max_shard_bytes) {
      shards.push_back({nt});
      continue;
    }
    if (current_bytes + n > max_shard_bytes && !current.empty()) {
      shards.push_back(std::move(current));
      current = {};
      current_bytes = 0;
    }
    current.push_back(nt);
    current_bytes += n;
  }
  if (!current.empty() || shards.empty()) shards.push_back(std::move(current));
  return shards;
}

// Files from an earlier save that the new layout does not use; transformers would pick a
// stale model.safetensors over a fresh index, so they must go.
void remove_stale(const fs::path& dir, const std::set<std::string>& keep) {
  static const std::regex shard_re(R"(model-\d{5}-of-\d{5}\.safetensors)");
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string n = e.path().filename().string();
    const bool ours = n == "model.safetensors" || n == "model.safetensors.index.json" ||
                      std::regex_match(n, shard_re);
    if (ours && !keep.count(n)) fs::remove(e.path(), ec);
  }
}

}  // namespace

std::vector<fs::path> save_checkpoint_tensors(const fs::path& dir, const NamedTensors& tensors,
                                              uint64_t max_shard_bytes,
                                              const std::map<std::string, std::string>& metadata) {
  HYLA_CHECK(max_shard_bytes > 0, "checkpoint {}: max shard size must be positive", dir.string());
  std::error_code ec;
  fs::create_directories(dir, ec);
  HYLA_CHECK(fs::is_directory(dir), "checkpoint {}: cannot create directory: {}", dir.string(), ec.message());
  std::set<std::string> names;
  for (const auto& nt : tensors)
    HYLA_CHECK(names.insert(nt.first).second, "checkpoint {}: tensor \"{}\" given twice", dir.string(), nt.first);
  const auto shards = split_shards(tensors, max_shard_bytes);
  std::vector<fs::path> written;
  if (shards.size() == 1) {
    written.push_back(dir / "model.safetensors");
    save_safetensors(written.back(), tensors, metadata);
    remove_stale(dir, {"model.safetensors"});
    return written;
  }
  nlohmann::json weight_map = nlohmann::json::object();
  uint64_t total = 0;
  std::set<std::string> keep{"model.safetensors.index.json"};
  for (size_t i = 0; i < shards.size(); ++i) {
    const std::string file = fmt::format("model-{:05d}-of-{:05d}.safetensors", i + 1, shards.size());
    written.push_back(dir / file);
    keep.insert(file);
    save_safetensors(written.back(), shards[i], metadata);
    for (const auto& [name, t] : shards[i]) {
      weight_map[name] = file;
      total += byte_size(t);
    }
  }
  // transformers' layout: {"metadata": {"total_size": bytes}, "weight_map": {...}}, sorted keys.
  nlohmann::json index = {{"metadata", {{"total_size", total}}}, {"weight_map", std::move(weight_map)}};
  written.push_back(dir / "model.safetensors.index.json");
  write_text_atomic(written.back(), index.dump(2) + "\n");
  remove_stale(dir, keep);
  return written;
}

}  // namespace hyla::io
