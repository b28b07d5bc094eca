#include "hyla/data/token_shards.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "hyla/io/atomic_file.h"
#include "hyla/util/error.h"

namespace hyla::data {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {
constexpr char kMagic[8] = {'H', 'Y', 'L', 'A', 'T', 'O', 'K', 'S'};
constexpr size_t kHeaderBytes = 64;

size_t round8(size_t n) { return (n + 7) & ~size_t(7); }

template <typename T>
void put(std::string& buf, size_t at, T v) {
  std::memcpy(buf.data() + at, &v, sizeof v);
}
}  // namespace

TokenDtype dtype_for_vocab(int64_t vocab_size) {
  return vocab_size <= 65536 ? TokenDtype::U16 : TokenDtype::U32;
}
int dtype_bytes(TokenDtype d) { return d == TokenDtype::U16 ? 2 : 4; }
std::string_view dtype_name(TokenDtype d) { return d == TokenDtype::U16 ? "uint16" : "uint32"; }

// ---- manifest ----

json Manifest::to_json() const {
  json splits_j = json::object();
  for (auto& [name, s] : splits) {
    json shards = json::array();
    for (auto& sh : s.shards)
      shards.push_back({{"file", sh.file}, {"tokens", sh.tokens}, {"documents", sh.documents}});
    splits_j[name] = {{"tokens", s.tokens}, {"documents", s.documents}, {"shards", shards}};
  }
  json sources_j = json::array();
  for (auto& s : sources)
    sources_j.push_back({{"path", s.path}, {"name", s.name}, {"format", s.format},
                         {"sha256", s.sha256}, {"documents", s.documents}, {"tokens", s.tokens}});
  return {{"format", "hyla-token-shards"},
          {"version", version},
          {"dtype", dtype_name(dtype)},
          {"vocab_size", vocab_size},
          {"eos_id", eos_id},
          {"tokenizer", {{"path", tokenizer_path}, {"sha256", tokenizer_sha256}}},
          {"split", {{"seed", seed}, {"val_fraction", val_fraction},
                     {"method", "document to val when mix(fnv1a64(text), seed) < val_fraction"}}},
          {"splits", splits_j},
          {"sources", sources_j}};
}

Manifest Manifest::from_json(const json& j, const std::string& where) {
  Manifest m;
  try {
    HYLA_CHECK(j.value("format", "") == "hyla-token-shards",
               "{}: not a hyla token-shard manifest (field \"format\")", where);
    m.version = j.at("version").get<int>();
    HYLA_CHECK(m.version == kManifestVersion, "{}: manifest version {} (this hyla reads {})",
               where, m.version, kManifestVersion);
    std::string dt = j.at("dtype").get<std::string>();
    HYLA_CHECK(dt == "uint16" || dt == "uint32", "{}: field \"dtype\": unknown \"{}\"", where, dt);
    m.dtype = dt == "uint16" ? TokenDtype::U16 : TokenDtype::U32;
    m.vocab_size = j.at("vocab_size").get<int64_t>();
    m.eos_id = j.at("eos_id").get<int32_t>();
    m.tokenizer_path = j.at("tokenizer").at("path").get<std::string>();
    m.tokenizer_sha256 = j.at("tokenizer").at("sha256").get<std::string>();
    m.seed = j.at("split").at("seed").get<uint64_t>();
    m.val_fraction = j.at("split").at("val_fraction").get<double>();
    for (auto& [name, s] : j.at("splits").items()) {
      SplitInfo info{s.at("tokens").get<int64_t>(), s.at("documents").get<int64_t>(), {}};
      for (auto& sh : s.at("shards"))
        info.shards.push_back({sh.at("file").get<std::string>(), sh.at("tokens").get<int64_t>(),
                               sh.at("documents").get<int64_t>()});
      m.splits[name] = std::move(info);
    }
    for (auto& s : j.at("sources"))
      m.sources.push_back({s.at("path"), s.at("name"), s.at("format"), s.at("sha256"),
                           s.at("documents").get<std::map<std::string, int64_t>>(),
                           s.at("tokens").get<std::map<std::string, int64_t>>()});
  } catch (const json::exception& e) {
    fail("{}: malformed manifest: {}", where, e.what());
  }
  return m;
}

Manifest Manifest::load(const fs::path& dir) {
  fs::path file = dir / "manifest.json";
  HYLA_CHECK(fs::exists(file), "{}: no manifest.json (not a prepared corpus; run `hyla data "
             "prepare`)", dir.string());
  json j;
  try {
    j = json::parse(io::read_text_file(file));
  } catch (const json::exception& e) {
    fail("{}: invalid JSON: {}", file.string(), e.what());
  }
  return from_json(j, file.string());
}

void Manifest::save(const fs::path& dir) const {
  io::write_text_atomic(dir / "manifest.json", to_json().dump(2) + "\n");
}

// ---- writer ----

ShardWriter::ShardWriter(fs::path dir, std::string split, TokenDtype dtype,
                         int64_t max_shard_tokens)
    : dir_(std::move(dir)), split_(std::move(split)), dtype_(dtype),
      max_tokens_(max_shard_tokens) {
  HYLA_CHECK(max_tokens_ > 0, "shard size must be positive, got {}", max_tokens_);
}

void ShardWriter::add_document(std::span<const int32_t> tokens, int32_t eos) {
  int64_t n = static_cast<int64_t>(tokens.size()) + 1;
  if (!tokens_.empty() && static_cast<int64_t>(tokens_.size()) + n > max_tokens_) flush();
  const uint32_t limit = dtype_ == TokenDtype::U16 ? 65535u : 0xFFFFFFFFu;
  for (int32_t t : tokens) {
    HYLA_CHECK(t >= 0 && static_cast<uint32_t>(t) <= limit,
               "token id {} does not fit the shard dtype {}", t, dtype_name(dtype_));
    tokens_.push_back(static_cast<uint32_t>(t));
  }
  tokens_.push_back(static_cast<uint32_t>(eos));
  offsets_.push_back(tokens_.size());
}

void ShardWriter::flush() {
  if (tokens_.empty()) return;
  const int bpt = dtype_bytes(dtype_);
  const size_t n = tokens_.size(), n_docs = offsets_.size() - 1;
  const size_t tok_bytes = round8(n * bpt);
  std::string header(kHeaderBytes, '\0');
  std::memcpy(header.data(), kMagic, 8);
  put<uint32_t>(header, 8, kShardFormatVersion);
  put<uint32_t>(header, 12, static_cast<uint32_t>(bpt));
  put<uint64_t>(header, 16, n);
  put<uint64_t>(header, 24, n_docs);
  put<uint64_t>(header, 32, kHeaderBytes);
  put<uint64_t>(header, 40, kHeaderBytes + tok_bytes);
  std::string body(tok_bytes, '\0');
  for (size_t i = 0; i < n; ++i) {
    if (bpt == 2) put<uint16_t>(body, 2 * i, static_cast<uint16_t>(tokens_[i]));
    else put<uint32_t>(body, 4 * i, tokens_[i]);
  }
  std::string file = fmt::format("{}-{:05}.tokens", split_, info_.shards.size());
  io::write_file_atomic(dir_ / file, [&](std::ostream& o) {
    o.write(header.data(), header.size());
    o.write(body.data(), body.size());
    o.write(reinterpret_cast<const char*>(offsets_.data()), offsets_.size() * sizeof(uint64_t));
  });
  info_.shards.push_back({file, static_cast<int64_t>(n), static_cast<int64_t>(n_docs)});
  info_.tokens += static_cast<int64_t>(n);
  info_.documents += static_cast<int64_t>(n_docs);
  tokens_.clear();
  offsets_.assign(1, 0);
}

SplitInfo ShardWriter::finish() {
  flush();
  return info_;
}

// ---- reader ----

TokenShard::TokenShard(const fs::path& file) : path_(file) {
  int fd = ::open(file.c_str(), O_RDONLY);
  HYLA_CHECK(fd >= 0, "cannot open token shard {}: {}", file.string(), std::strerror(errno));
  struct stat st{};
  ::fstat(fd, &st);
  map_len_ = static_cast<size_t>(st.st_size);
  if (map_len_ < kHeaderBytes) {
    ::close(fd);
    fail("{}: truncated token shard ({} bytes)", file.string(), map_len_);
  }
  map_ = ::mmap(nullptr, map_len_, PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  HYLA_CHECK(map_ != MAP_FAILED, "cannot mmap {}: {}", file.string(), std::strerror(errno));
  auto* base = static_cast<const uint8_t*>(map_);
  auto get64 = [&](size_t at) { uint64_t v; std::memcpy(&v, base + at, 8); return v; };
  uint32_t version, bpt;
  std::memcpy(&version, base + 8, 4);
  std::memcpy(&bpt, base + 12, 4);
  n_tokens_ = static_cast<int64_t>(get64(16));
  n_docs_ = static_cast<int64_t>(get64(24));
  uint64_t tok_off = get64(32), doc_off = get64(40);
  bool ok = std::memcmp(base, kMagic, 8) == 0 && version == kShardFormatVersion &&
            (bpt == 2 || bpt == 4) && tok_off == kHeaderBytes &&
            doc_off == kHeaderBytes + round8(size_t(n_tokens_) * bpt) &&
            doc_off + (n_docs_ + 1) * 8 == map_len_;
  if (!ok) {
    ::munmap(map_, map_len_);
    map_ = nullptr;
    fail("{}: not a hyla token shard of format version {} (bad header or size)",
         file.string(), kShardFormatVersion);
  }
  bytes_ = static_cast<int>(bpt);
  tokens_ = base + tok_off;
  offsets_ = reinterpret_cast<const uint64_t*>(base + doc_off);
  HYLA_CHECK(offsets_[0] == 0 && offsets_[n_docs_] == uint64_t(n_tokens_),
             "{}: document offsets do not span the tokens", file.string());
}

TokenShard::~TokenShard() {
  if (map_) ::munmap(map_, map_len_);
}

uint32_t TokenShard::at(int64_t i) const {
  if (bytes_ == 2) {
    uint16_t v;
    std::memcpy(&v, tokens_ + 2 * i, 2);
    return v;
  }
  uint32_t v;
  std::memcpy(&v, tokens_ + 4 * i, 4);
  return v;
}

void TokenShard::copy(int64_t start, int64_t n, int64_t* out) const {
  HYLA_CHECK(start >= 0 && n >= 0 && start + n <= n_tokens_,
             "{}: token range [{}, {}) outside the shard's {} tokens", path_.string(), start,
             start + n, n_tokens_);
  for (int64_t i = 0; i < n; ++i) out[i] = at(start + i);
}

std::shared_ptr<TokenDataset> TokenDataset::open(const fs::path& dir, const std::string& split) {
  auto ds = std::make_shared<TokenDataset>();
  ds->manifest_ = Manifest::load(dir);
  // "validation" is accepted for the manifest's "val" (both names are in use).
  auto it = ds->manifest_.splits.find(split == "validation" ? "val" : split);
  HYLA_CHECK(it != ds->manifest_.splits.end(), "{}: the corpus has no split \"{}\"",
             dir.string(), split);
  ds->doc_starts_.push_back(0);
  for (const auto& info : it->second.shards) {
    auto shard = std::make_unique<TokenShard>(dir / info.file);
    HYLA_CHECK(shard->size() == info.tokens && shard->num_documents() == info.documents,
               "{}: holds {} tokens / {} documents, the manifest says {} / {}",
               shard->path().string(), shard->size(), shard->num_documents(), info.tokens,
               info.documents);
    HYLA_CHECK(shard->dtype() == ds->manifest_.dtype, "{}: dtype differs from the manifest",
               shard->path().string());
    ds->total_tokens_ += shard->size();
    ds->total_docs_ += shard->num_documents();
    ds->doc_starts_.push_back(ds->total_docs_);
    ds->shards_.push_back(std::move(shard));
  }
  return ds;
}

std::vector<int32_t> TokenDataset::document(int64_t i) const {
  HYLA_CHECK(i >= 0 && i < total_docs_, "document {} out of range ({} documents)", i,
             total_docs_);
  size_t s = std::upper_bound(doc_starts_.begin(), doc_starts_.end(), i) - doc_starts_.begin() - 1;
  const auto& shard = *shards_[s];
  auto off = shard.doc_offsets();
  int64_t local = i - doc_starts_[s];
  int64_t begin = off[local], end = off[local + 1];
  std::vector<int32_t> out(end - begin);
  for (int64_t k = begin; k < end; ++k) out[k - begin] = static_cast<int32_t>(shard.at(k));
  return out;
}

}  // namespace hyla::data
