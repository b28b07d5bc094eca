// safetensors reader/writer: round trips of every dtype, sharded checkpoints, and one
// test per class of malformed file (each must raise hyla::Error naming the file and,
// where there is one, the tensor). Byte-level agreement with the reference library is
// checked by tests/py/test_safetensors.py.
#include <gtest/gtest.h>
#include <ftw.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "hyla/io/atomic_file.h"
#include "hyla/io/safetensors.h"
#include "hyla/util/error.h"

namespace fs = std::filesystem;
using namespace hyla::io;

namespace {

// POSIX removal: std::filesystem::remove_all resolves to a copy exported by PyPI's
// libtorch.so, which crashes.
int remove_entry(const char* p, const struct stat*, int, struct FTW*) { return ::remove(p); }
void remove_tree(const fs::path& p) { ::nftw(p.c_str(), remove_entry, 16, FTW_DEPTH | FTW_PHYS); }

// Fresh directories under /tmp, removed when the test binary exits.
struct TempDirs {
  std::vector<fs::path> dirs;
  ~TempDirs() {
    for (const auto& d : dirs) remove_tree(d);
  }
};

fs::path temp_dir(const std::string& tag) {
  static TempDirs all;
  fs::path d = fs::temp_directory_path() / fmt::format("hyla_st_{}_{}_{}", ::getpid(), tag, all.dirs.size());
  remove_tree(d);
  fs::create_directories(d);
  all.dirs.push_back(d);
  return d;
}

void write_bytes(const fs::path& p, const std::string& bytes) {
  std::ofstream o(p, std::ios::binary | std::ios::trunc);
  o.write(bytes.data(), std::streamsize(bytes.size()));
}

std::string le64(uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = char((n >> (8 * i)) & 0xff);
  return s;
}

// A file with the given header text and `data_bytes` zero bytes of data.
std::string make_file(const std::string& header, size_t data_bytes) {
  return le64(header.size()) + header + std::string(data_bytes, '\0');
}

// Every dtype LibTorch can hold, with values exercising sign, fraction and range.
NamedTensors every_dtype() {
  torch::manual_seed(7);
  auto base = torch::randn({3, 5}, torch::kDouble) * 40;
  NamedTensors t;
  for (auto dt : {torch::kDouble, torch::kFloat, torch::kHalf, torch::kBFloat16, torch::kFloat8_e4m3fn,
                  torch::kFloat8_e5m2, torch::kComplexFloat})
    t.emplace_back(fmt::format("f.{}", c10::toString(dt)), base.to(dt));
  for (auto dt : {torch::kLong, torch::kInt, torch::kShort, torch::kChar})
    t.emplace_back(fmt::format("i.{}", c10::toString(dt)), base.round().clamp(-128, 127).to(dt));
  auto nonneg = base.abs().round().clamp(0, 255);
  for (auto dt : {torch::kByte, torch::kUInt16, torch::kUInt32, torch::kUInt64})
    t.emplace_back(fmt::format("u.{}", c10::toString(dt)), nonneg.to(dt));
  t.emplace_back("bool", base > 0);
  t.emplace_back("scalar", torch::tensor(3.5f).reshape({}));
  t.emplace_back("empty", torch::empty({0, 4}, torch::kBFloat16));
  t.emplace_back("transposed", torch::arange(12, torch::kFloat).reshape({3, 4}).t());  // non-contiguous
  t.emplace_back("offset_view", torch::arange(10, torch::kInt).slice(0, 3, 9));        // storage offset
  return t;
}

bool same_bytes(const torch::Tensor& a, const torch::Tensor& b) {
  if (a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes()) return false;
  auto ca = a.contiguous(), cb = b.contiguous();
  return std::memcmp(ca.data_ptr(), cb.data_ptr(), size_t(ca.numel()) * ca.element_size()) == 0;
}

// Expects hyla::Error whose message contains every string in `parts`.
template <typename F>
void expect_error(F&& f, std::initializer_list<std::string> parts) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one containing " << *parts.begin();
  } catch (const hyla::Error& e) {
    for (const auto& p : parts) EXPECT_NE(std::string(e.what()).find(p), std::string::npos)
        << "message: " << e.what() << "\nmissing: " << p;
  }
}

}  // namespace

TEST(Safetensors, RoundTripEveryDtype) {
  auto dir = temp_dir("rt");
  auto tensors = every_dtype();
  save_safetensors(dir / "a.safetensors", tensors, {{"format", "pt"}, {"note", "x"}});
  auto f = SafetensorsFile::open(dir / "a.safetensors");
  EXPECT_EQ(f->metadata().at("format"), "pt");
  EXPECT_EQ(f->metadata().at("note"), "x");
  EXPECT_EQ(f->names().size(), tensors.size());
  for (const auto& [name, t] : tensors) {
    SCOPED_TRACE(name);
    auto view = f->load(name);
    auto copy = f->load(name, /*copy=*/true);
    EXPECT_TRUE(same_bytes(view, t));
    EXPECT_TRUE(same_bytes(copy, t));
    EXPECT_TRUE(view.is_contiguous());
    EXPECT_EQ(f->info(name).dtype, from_torch_dtype(t.scalar_type()));
  }
  // Header padded to 8 bytes, so data starts aligned.
  std::ifstream in(dir / "a.safetensors", std::ios::binary);
  uint64_t n = 0;
  in.read(reinterpret_cast<char*>(&n), 8);
  EXPECT_EQ(n % 8, 0u);
}

TEST(Safetensors, ViewOutlivesFileAndIsPrivate) {
  auto dir = temp_dir("life");
  auto w = torch::arange(64, torch::kFloat).reshape({8, 8});
  save_safetensors(dir / "w.safetensors", {{"w", w}});
  torch::Tensor view;
  {
    auto store = TensorStore::open(dir / "w.safetensors");
    view = store.load("w");
  }  // file and store gone; the view keeps the mapping alive
  EXPECT_TRUE(torch::equal(view, w));
  view.add_(1);  // copy-on-write: the file is untouched
  EXPECT_TRUE(torch::equal(SafetensorsFile::open(dir / "w.safetensors")->load("w"), w));
}

TEST(Safetensors, UnalignedTensorIsCopied) {
  // A valid file (the reference accepts it) whose F32 tensor sits at odd offset 1.
  auto dir = temp_dir("align");
  std::string header = R"({"b":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                       R"("a":{"dtype":"F32","shape":[2],"data_offsets":[1,9]}})";
  std::string file = le64(header.size()) + header + std::string("\x07", 1);
  float vals[2] = {1.5f, -2.0f};
  file.append(reinterpret_cast<const char*>(vals), 8);
  write_bytes(dir / "u.safetensors", file);
  auto f = SafetensorsFile::open(dir / "u.safetensors");
  EXPECT_EQ(f->names(), (std::vector<std::string>{"b", "a"}));  // file order
  EXPECT_TRUE(torch::equal(f->load("a"), torch::tensor({1.5f, -2.0f})));
  EXPECT_EQ(f->load("b").item<uint8_t>(), 7);
}

TEST(Safetensors, WriterHandlesDeviceLayoutAndRejectsBadInput) {
  auto dir = temp_dir("wr");
  auto p = dir / "x.safetensors";
  expect_error([&] { save_safetensors(p, {{"a", torch::ones(2)}, {"a", torch::ones(2)}}); }, {"x.safetensors", "\"a\"", "twice"});
  expect_error([&] { save_safetensors(p, {{"__metadata__", torch::ones(2)}}); }, {"reserved"});
  expect_error([&] { save_safetensors(p, {{"c", torch::ones(2, torch::kComplexDouble)}}); }, {"x.safetensors", "\"c\""});
  EXPECT_FALSE(fs::exists(p));
  save_safetensors(p, {});
  EXPECT_TRUE(SafetensorsFile::open(p)->names().empty());
  // conjugate and negative views are materialised before writing
  auto z = torch::complex(torch::ones(3), torch::ones(3)).conj();
  save_safetensors(p, {{"z", z}});
  EXPECT_TRUE(torch::equal(SafetensorsFile::open(p)->load("z"), z.resolve_conj()));
}

TEST(Safetensors, ShardedRoundTrip) {
  auto dir = temp_dir("shard");
  NamedTensors t;
  for (int i = 0; i < 7; ++i) t.emplace_back(fmt::format("layers.{}.w", i), torch::full({10, 10}, float(i)));
  t.emplace_back("big", torch::arange(1000, torch::kDouble));  // 8000 B > limit: own shard
  auto files = save_checkpoint_tensors(dir, t, /*max_shard_bytes=*/1000);
  // 400 B each: two per shard -> 4 shards for the 7 small ones + 1 for "big"
  ASSERT_EQ(files.size(), 6u);
  EXPECT_EQ(files[0].filename(), "model-00001-of-00005.safetensors");
  EXPECT_EQ(files.back().filename(), "model.safetensors.index.json");
  auto index = nlohmann::json::parse(hyla::io::read_text_file(files.back()));
  EXPECT_EQ(index["metadata"]["total_size"].get<uint64_t>(), 7u * 400 + 8000);
  // As huggingface_hub: an oversized tensor is closed into a shard at once, the open
  // shard (layers.6) comes last.
  EXPECT_EQ(index["weight_map"]["big"], "model-00004-of-00005.safetensors");
  EXPECT_EQ(index["weight_map"]["layers.6.w"], "model-00005-of-00005.safetensors");
  EXPECT_EQ(SafetensorsFile::open(files[0])->metadata().at("format"), "pt");

  auto store = TensorStore::open(dir);
  EXPECT_EQ(store.names().size(), t.size());
  for (const auto& [name, x] : t) EXPECT_TRUE(same_bytes(store.load(name), x)) << name;
  expect_error([&] { store.load("nope"); }, {dir.string(), "missing tensor nope"});

  // Re-saving as one file removes the stale shards and index.
  save_checkpoint_tensors(dir, t);
  EXPECT_TRUE(fs::exists(dir / "model.safetensors"));
  EXPECT_FALSE(fs::exists(dir / "model.safetensors.index.json"));
  EXPECT_FALSE(fs::exists(dir / "model-00001-of-00005.safetensors"));
  EXPECT_TRUE(same_bytes(TensorStore::open(dir).load("big"), t.back().second));
}

TEST(Safetensors, IndexErrors) {
  auto dir = temp_dir("idx");
  save_safetensors(dir / "s1.safetensors", {{"a", torch::ones(2)}, {"b", torch::ones(2)}});
  save_safetensors(dir / "s2.safetensors", {{"b", torch::ones(2)}});
  auto index = [&](const std::string& text) { write_bytes(dir / "model.safetensors.index.json", text); };
  index(R"({"weight_map": {"a": "s1.safetensors", "c": "gone.safetensors"}})");
  expect_error([&] { TensorStore::open(dir); }, {dir.string(), "gone.safetensors", "does not exist"});
  index(R"({"weight_map": {"a": "s1.safetensors", "a": "s1.safetensors"}})");
  expect_error([&] { TensorStore::open(dir); }, {"model.safetensors.index.json", "\"a\"", "listed twice"});
  index(R"({"weight_map": {"a": "s1.safetensors", "b": "s2.safetensors"}})");
  expect_error([&] { TensorStore::open(dir); }, {dir.string(), "\"b\"", "s1.safetensors", "s2.safetensors"});
  index(R"({"weight_map": {"z": "s2.safetensors"}})");
  expect_error([&] { TensorStore::open(dir); }, {"\"z\"", "does not contain it"});
  index(R"({"weight_map": {"a": "../s1.safetensors"}})");
  expect_error([&] { TensorStore::open(dir); }, {"outside the checkpoint"});
  index(R"({"weight_map": {"a": 3}})");
  expect_error([&] { TensorStore::open(dir); }, {"\"a\"", "expected a file name"});
  index(R"({"weight_map": [})");
  expect_error([&] { TensorStore::open(dir); }, {"model.safetensors.index.json", "not valid JSON"});
  index(R"({"metadata": {}})");
  expect_error([&] { TensorStore::open(dir); }, {"weight_map"});
  fs::remove(dir / "model.safetensors.index.json");
  expect_error([&] { TensorStore::open(dir); }, {dir.string(), "neither"});
  expect_error([&] { TensorStore::open(dir / "absent"); }, {"absent", "no such file"});
}

// One case per class of malformation: the header text, data bytes, and the words the
// error must contain besides the file name.
struct Malformed {
  const char* what;
  std::string file;
  std::vector<std::string> expect;
};

static std::vector<Malformed> malformed_cases() {
  auto entry = [](const std::string& body) { return "{\"t\":{" + body + "}}"; };
  const std::string ok = R"("dtype":"F32","shape":[2],"data_offsets":[0,8])";
  return {
      {"short file", std::string("\x01\x02\x03", 3), {"too short"}},
      {"empty file", "", {"0 bytes", "too short"}},
      {"length past EOF", le64(1000) + "{}", {"runs past the end"}},
      {"absurd length", le64(uint64_t(1) << 62) + "{}", {"exceeds"}},
      {"not json", make_file("{\"t\": nope", 0), {"not valid JSON"}},
      {"trailing garbage", make_file("{}\x01", 0), {"not valid JSON"}},
      {"trailing NUL", make_file(std::string("{}\0{", 4), 0), {"not valid JSON", "NUL byte at header offset 2"}},
      {"invalid utf8", make_file("{\"\xff\":1}", 0), {"not valid JSON"}},
      {"not an object", make_file("[1,2]", 0), {"array", "expected an object"}},
      {"entry not object", make_file(R"({"t":5})", 0), {"\"t\"", "expected an object"}},
      {"missing dtype", make_file(entry(R"("shape":[2],"data_offsets":[0,8])"), 8), {"\"t\"", "no \"dtype\""}},
      {"missing shape", make_file(entry(R"("dtype":"F32","data_offsets":[0,8])"), 8), {"\"t\"", "no \"shape\""}},
      {"missing offsets", make_file(entry(R"("dtype":"F32","shape":[2])"), 8), {"\"t\"", "no \"data_offsets\""}},
      {"dtype not string", make_file(entry(R"("dtype":1,"shape":[2],"data_offsets":[0,8])"), 8), {"\"t\"", "dtype is a JSON number"}},
      {"unknown dtype", make_file(entry(R"("dtype":"F33","shape":[2],"data_offsets":[0,8])"), 8), {"\"t\"", "unknown dtype \"F33\""}},
      {"shape not array", make_file(entry(R"("dtype":"F32","shape":2,"data_offsets":[0,8])"), 8), {"\"t\"", "shape is a JSON number"}},
      {"negative dim", make_file(entry(R"("dtype":"F32","shape":[-2],"data_offsets":[0,8])"), 8), {"\"t\"", "negative"}},
      {"float dim", make_file(entry(R"("dtype":"F32","shape":[2.0],"data_offsets":[0,8])"), 8), {"\"t\"", "non-negative integer"}},
      {"overflowing shape", make_file(entry(R"("dtype":"F32","shape":[4294967296,4294967296,4],"data_offsets":[0,8])"), 8), {"\"t\"", "too many elements"}},
      {"three offsets", make_file(entry(R"("dtype":"F32","shape":[2],"data_offsets":[0,8,8])"), 8), {"\"t\"", "[begin, end]"}},
      {"begin after end", make_file(entry(R"("dtype":"F32","shape":[2],"data_offsets":[8,0])"), 8), {"\"t\"", "begin after"}},
      {"offsets past buffer", make_file(entry(R"("dtype":"F32","shape":[2],"data_offsets":[0,8])"), 4), {"\"t\"", "past the data buffer"}},
      {"byte count mismatch", make_file(entry(R"("dtype":"F32","shape":[3],"data_offsets":[0,8])"), 8), {"\"t\"", "needs 12 bytes", "span 8"}},
      {"sub-byte remainder", make_file(entry(R"("dtype":"F4","shape":[3],"data_offsets":[0,1])"), 1), {"\"t\"", "whole bytes"}},
      {"overlap", make_file("{\"t\":{" + ok + R"(},"u":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8), {"\"u\"", "overlaps tensor \"t\""}},
      {"gap", make_file(entry(R"("dtype":"F32","shape":[2],"data_offsets":[4,12])"), 12), {"\"t\"", "4 bytes before", "packed"}},
      {"trailing data", make_file(entry(ok), 12), {"trailing 4 bytes"}},
      {"duplicate name", make_file("{\"t\":{" + ok + "},\"t\":{" + ok + "}}", 8), {"\"t\"", "listed twice"}},
      {"duplicate field", make_file(entry(R"("dtype":"F32","dtype":"F32","shape":[2],"data_offsets":[0,8])"), 8), {"\"dtype\"", "twice", "\"t\""}},
      {"metadata value", make_file(R"({"__metadata__":{"k":1}})", 0), {"__metadata__", "\"k\"", "expected a string"}},
      {"metadata array", make_file(R"({"__metadata__":[]})", 0), {"__metadata__", "expected an object"}},
      {"deep nesting", make_file(std::string(40, '[') + std::string(40, ']'), 0), {"nests deeper"}},
  };
}

TEST(Safetensors, EveryMalformationClassIsANamedError) {
  auto dir = temp_dir("bad");
  for (const auto& c : malformed_cases()) {
    SCOPED_TRACE(c.what);
    auto p = dir / "bad_file.safetensors";
    write_bytes(p, c.file);
    expect_error([&] { SafetensorsFile::open(p); }, {p.string()});
    for (const auto& e : c.expect) expect_error([&] { SafetensorsFile::open(p); }, {e});
    // TensorStore reports the same.
    expect_error([&] { TensorStore::open(p); }, {"bad_file.safetensors"});
  }
}

TEST(Safetensors, LoadTimeErrors) {
  auto dir = temp_dir("loadbad");
  auto p = dir / "b.safetensors";
  std::string header = R"({"flag":{"dtype":"BOOL","shape":[2],"data_offsets":[0,2]},)"
                       R"("packed":{"dtype":"F4","shape":[2],"data_offsets":[2,3]}})";
  write_bytes(p, le64(header.size()) + header + std::string("\x01\x02\x00", 3));
  auto f = SafetensorsFile::open(p);  // the header is valid
  expect_error([&] { f->load("flag"); }, {"b.safetensors", "\"flag\"", "byte 2"});
  expect_error([&] { f->load("packed"); }, {"b.safetensors", "\"packed\"", "not supported"});
  expect_error([&] { f->load("absent"); }, {"b.safetensors", "\"absent\""});
}

TEST(Safetensors, AcceptsWhatTheReferenceAccepts) {
  // Leading whitespace, unknown entry fields, null metadata, empty and scalar tensors.
  auto dir = temp_dir("ok");
  auto p = dir / "ok.safetensors";
  std::string header = R"(  {"__metadata__":null,"e":{"dtype":"F16","shape":[0,3],"data_offsets":[0,0],"x":[1]},)"
                       R"("s":{"dtype":"I64","shape":[],"data_offsets":[0,8]}})";
  write_bytes(p, make_file(header, 8));
  auto f = SafetensorsFile::open(p);
  EXPECT_TRUE(f->metadata().empty());
  EXPECT_EQ(f->load("e").sizes(), (std::vector<int64_t>{0, 3}));
  EXPECT_EQ(f->load("s").dim(), 0);
  EXPECT_EQ(f->load("s").item<int64_t>(), 0);
}
