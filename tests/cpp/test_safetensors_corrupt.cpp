// Randomized corruption: thousands of files mutated from valid ones (bit flips,
// truncation, length-field lies, JSON rewrites). Every one must either load
// consistently (the header's promises hold for the bytes present) or raise hyla::Error
// naming the file; any other exception, or a crash, fails the test.
#include <gtest/gtest.h>
#include <ftw.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "hyla/io/safetensors.h"
#include "hyla/util/error.h"

namespace fs = std::filesystem;
using namespace hyla::io;
using Json = nlohmann::ordered_json;

namespace {

// POSIX removal: std::filesystem::remove_all resolves to a copy exported by PyPI's
// libtorch.so, which crashes.
int remove_entry(const char* p, const struct stat*, int, struct FTW*) { return ::remove(p); }
void remove_tree(const fs::path& p) { ::nftw(p.c_str(), remove_entry, 16, FTW_DEPTH | FTW_PHYS); }

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string le64(uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = char((n >> (8 * i)) & 0xff);
  return s;
}

// Valid starting points, written by hyla's writer (whose format the oracle tests pin).
std::vector<std::string> base_files(const fs::path& dir) {
  std::vector<NamedTensors> sets = {
      {{"w", torch::randn({4, 3})}},
      {{"a", torch::randn({2, 2}, torch::kDouble)}, {"b", torch::ones({3}, torch::kBFloat16)},
       {"c", torch::tensor({true, false, true})}, {"d", torch::arange(5, torch::kInt)},
       {"e", torch::empty({0})}, {"f", torch::ones({2}, torch::kFloat8_e4m3fn)}},
      {},
      {{"model.layers.0.self_attn.q_proj.weight", torch::randn({8, 8}, torch::kHalf)},
       {"model.layers.0.mlp.up_proj.weight", torch::randn({4, 8}, torch::kHalf)},
       {"lm_head.weight", torch::randn({2, 8})}},
  };
  std::vector<std::string> out;
  for (size_t i = 0; i < sets.size(); ++i) {
    auto p = dir / fmt::format("base{}.safetensors", i);
    save_safetensors(p, sets[i], {{"format", "pt"}});
    out.push_back(read_all(p));
  }
  return out;
}

class Mutator {
 public:
  explicit Mutator(uint64_t seed) : rng_(seed) {}
  size_t below(size_t n) { return n ? size_t(rng_() % n) : 0; }
  bool coin(int one_in) { return below(size_t(one_in)) == 0; }

  std::string mutate(std::string f) {
    int steps = coin(2) ? 1 : 2 + int(below(2));
    for (int s = 0; s < steps; ++s) {
      switch (below(9)) {
        case 0: flip_bits(f, 0, f.size()); break;
        case 1: flip_bits(f, 8, std::min(f.size(), header_end(f))); break;
        case 2: f.resize(below(f.size() + 1)); break;
        case 3: f.append(random_bytes(1 + below(16))); break;
        case 4: set_length(f); break;
        case 5: f = rewrite_json(f); break;
        case 6: splice(f); break;
        case 7: flip_bits(f, std::min(f.size(), header_end(f)), f.size()); break;  // data only
        default: f = rewrite_json(f, /*keep_valid=*/true); break;
      }
    }
    return f;
  }

 private:
  static uint64_t length_of(const std::string& f) {
    uint64_t n = 0;
    for (int i = 7; i >= 0 && f.size() >= 8; --i) n = (n << 8) | uint8_t(f[i]);
    return n;
  }
  static size_t header_end(const std::string& f) {
    uint64_t n = length_of(f);
    return f.size() < 8 || n > f.size() - 8 ? f.size() : size_t(8 + n);
  }
  std::string random_bytes(size_t n) {
    std::string s(n, '\0');
    for (auto& c : s) c = char(rng_());
    return s;
  }
  void flip_bits(std::string& f, size_t lo, size_t hi) {
    if (hi <= lo) return;
    for (size_t k = 1 + below(8); k > 0; --k) f[lo + below(hi - lo)] ^= char(1u << below(8));
  }
  void splice(std::string& f) {
    if (f.size() < 2) return;
    size_t from = below(f.size()), to = below(f.size()), len = 1 + below(24);
    std::string chunk = f.substr(from, len);
    f.replace(to, std::min(chunk.size(), f.size() - to), chunk);
  }
  void set_length(std::string& f) {
    if (f.size() < 8) return;
    const uint64_t n = length_of(f), size = f.size();
    const uint64_t choices[] = {0, n - 1, n + 1, n + 8, n - 8, size, size - 8, size - 7, rng_(),
                                uint64_t(1) << 63, 100'000'001, UINT64_MAX, n + below(64)};
    f.replace(0, 8, le64(choices[below(std::size(choices))]));
  }
  Json random_value() {
    switch (below(9)) {
      case 0: return -int64_t(below(10)) - 1;
      case 1: return below(100);
      case 2: return rng_();  // huge
      case 3: return 2.5;
      case 4: return "F32";
      case 5: return Json::array({below(8), below(8)});
      case 6: return nullptr;
      case 7: return Json::object();
      default: return std::array<const char*, 8>{"F4", "BOOL", "F64", "X", "", "I8", "F6_E2M3", "C64"}[below(8)];
    }
  }
  void tweak_entry(Json& e) {
    static const char* fields[] = {"dtype", "shape", "data_offsets"};
    const char* key = fields[below(3)];
    switch (below(6)) {
      case 0: e.erase(key); break;
      case 1: e[key] = random_value(); break;
      case 2: e["extra"] = random_value(); break;
      case 3:
        if (e.contains(key) && e[key].is_array() && !e[key].empty()) e[key][below(e[key].size())] = random_value();
        break;
      case 4:
        if (e.contains(key) && e[key].is_array()) e[key].push_back(random_value());
        break;
      default:
        if (e.contains("data_offsets") && e["data_offsets"].is_array() && e["data_offsets"].size() == 2 &&
            e["data_offsets"][0].is_number_unsigned()) {
          int64_t delta = int64_t(below(17)) - 8;
          e["data_offsets"][below(2)] = e["data_offsets"][0].get<int64_t>() + delta;
        }
    }
  }
  // Edits that keep a file valid: same-size dtype, same-numel shape, new name, metadata.
  void benign_edit(Json& h, const std::vector<std::string>& keys) {
    const std::string& k = keys[below(keys.size())];
    if (k == "__metadata__" || !h[k].is_object() || !h[k].contains("dtype") || !h[k].contains("shape")) {
      h["__metadata__"] = Json{{"k", std::to_string(below(1000))}};
      return;
    }
    Json& e = h[k];
    static const std::vector<std::vector<const char*>> same_size = {
        {"BOOL", "U8", "I8", "F8_E4M3", "F8_E5M2", "F8_E8M0"}, {"I16", "U16", "F16", "BF16"},
        {"I32", "U32", "F32"}, {"I64", "U64", "F64", "C64"}};
    switch (below(3)) {
      case 0:
        for (const auto& g : same_size)
          if (std::find(g.begin(), g.end(), e["dtype"].get<std::string>()) != g.end()) e["dtype"] = g[below(g.size())];
        break;
      case 1: {
        uint64_t numel = 1;
        for (const auto& d : e["shape"]) numel *= d.is_number_unsigned() ? d.get<uint64_t>() : 1;
        e["shape"] = coin(2) ? Json::array({numel}) : Json::array({1, numel, 1});
        break;
      }
      default: {
        Json moved = e;
        h.erase(k);
        h[k + ".renamed"] = moved;
      }
    }
  }
  // Parses the header, edits it, and writes it back with a (usually) correct length.
  std::string rewrite_json(const std::string& f, bool keep_valid = false) {
    if (f.size() < 8) return f;
    const size_t end = header_end(f);
    Json h = Json::parse(f.begin() + 8, f.begin() + std::ptrdiff_t(end), nullptr, false);
    if (h.is_discarded() || !h.is_object()) return f;
    std::vector<std::string> keys;
    for (auto it = h.begin(); it != h.end(); ++it) keys.push_back(it.key());
    std::string extra;
    if (keep_valid && !keys.empty()) {
      benign_edit(h, keys);
      std::string text = h.dump();
      text.append((8 - text.size() % 8) % 8, ' ');
      return le64(text.size()) + text + f.substr(end);
    }
    switch (below(5)) {
      case 0:
        if (!keys.empty()) {
          Json& e = h[keys[below(keys.size())]];
          if (e.is_object()) tweak_entry(e); else e = random_value();
        }
        break;
      case 1: if (!keys.empty()) h.erase(keys[below(keys.size())]); break;
      case 2: h["__metadata__"] = coin(2) ? random_value() : Json{{"k", random_value()}}; break;
      case 3:  // a name given twice: JSON libraries keep one silently, hyla must refuse
        if (!keys.empty()) extra = "," + Json(keys[below(keys.size())]).dump() + ":" + h[keys[0]].dump();
        break;
      default: if (!keys.empty()) h[keys[below(keys.size())] + "x"] = h[keys[0]]; break;
    }
    std::string text = h.dump();
    if (!extra.empty()) text.insert(text.size() - 1, extra);
    text.append(below(9), ' ');
    uint64_t n = coin(5) ? text.size() + below(5) : text.size();
    return le64(n) + text + f.substr(end);
  }

  std::mt19937_64 rng_;
};

// Checks a header the parser accepted: the promises it makes hold for `bytes`.
void check_consistent(const SafetensorsHeader& h, const std::string& bytes) {
  ASSERT_LE(h.data_start, bytes.size());
  const uint64_t data_size = bytes.size() - h.data_start;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (const auto& t : h.tensors) {
    const unsigned bits = safetensors_dtype_bits(t.dtype);
    ASSERT_NE(bits, 0u) << t.dtype;
    uint64_t numel = 1;
    for (int64_t d : t.shape) {
      ASSERT_GE(d, 0);
      numel *= uint64_t(d);
    }
    ASSERT_LE(t.begin, t.end);
    ASSERT_LE(t.end, data_size);
    ASSERT_EQ((t.end - t.begin) * 8, numel * bits) << t.name;
    ranges.emplace_back(t.begin, t.end);
  }
  std::sort(ranges.begin(), ranges.end());
  uint64_t at = 0;
  for (auto [b, e] : ranges) {
    ASSERT_EQ(b, at);
    at = e;
  }
  ASSERT_EQ(at, data_size);
}

// The same bytes through the real path: write, mmap, load every tensor as view and copy.
void check_file(const fs::path& p, const std::string& bytes, const SafetensorsHeader* h) {
  {
    std::ofstream o(p, std::ios::binary | std::ios::trunc);
    o.write(bytes.data(), std::streamsize(bytes.size()));
  }
  if (!h) {
    EXPECT_THROW(SafetensorsFile::open(p), hyla::Error);
    return;
  }
  auto f = SafetensorsFile::open(p);
  for (const auto& t : h->tensors) {
    for (bool copy : {false, true}) {
      try {
        torch::Tensor x = f->load(t.name, copy);
        ASSERT_EQ(uint64_t(x.numel()) * x.element_size(), t.end - t.begin);
        ASSERT_EQ(std::memcmp(x.data_ptr(), bytes.data() + h->data_start + t.begin, t.end - t.begin), 0);
      } catch (const hyla::Error& e) {
        // only BOOL bytes other than 0/1 and sub-byte dtypes are refused at load time
        std::string w = e.what();
        EXPECT_TRUE(w.find("BOOL") != std::string::npos || w.find("not supported") != std::string::npos) << w;
      }
    }
  }
}

}  // namespace

TEST(SafetensorsCorruption, TenThousandMutatedFilesNeverCrash) {
  const fs::path dir = fs::temp_directory_path() / fmt::format("hyla_st_corrupt_{}", ::getpid());
  remove_tree(dir);
  fs::create_directories(dir);
  torch::manual_seed(3);
  const auto bases = base_files(dir);
  Mutator m(20240601);
  constexpr int kFiles = 12000, kThroughMmapEvery = 40;
  int accepted = 0, rejected = 0, via_mmap = 0;
  for (int i = 0; i < kFiles; ++i) {
    const std::string bytes = m.mutate(bases[size_t(i) % bases.size()]);
    const std::string label = fmt::format("mutant{}.safetensors", i);
    std::optional<SafetensorsHeader> h;
    try {
      h = parse_safetensors_header(
          std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()), label);
      ++accepted;
      check_consistent(*h, bytes);
    } catch (const hyla::Error& e) {
      ++rejected;
      ASSERT_NE(std::string(e.what()).find(label), std::string::npos) << e.what();
    } catch (const std::exception& e) {
      FAIL() << "mutant " << i << " raised a non-hyla exception: " << e.what();
    }
    if (HasFatalFailure()) FAIL() << "mutant " << i << " broke the header's promises";
    if (i % kThroughMmapEvery == 0) {
      check_file(dir / "mutant.safetensors", bytes, h ? &*h : nullptr);
      ++via_mmap;
    }
  }
  std::printf("[corruption] %d mutated files: %d loaded consistently, %d rejected with hyla::Error; "
              "%d of them also through mmap'd files\n", kFiles, accepted, rejected, via_mmap);
  RecordProperty("accepted", accepted);
  RecordProperty("rejected", rejected);
  // Both outcomes must be well represented, or the mutations are not testing anything.
  EXPECT_GT(accepted, kFiles / 20);
  EXPECT_GT(rejected, kFiles / 2);
  remove_tree(dir);
}
