// Test entry points for tests/py/test_safetensors.py, whose oracle is the Python
// `safetensors` package (and huggingface_hub for sharded checkpoints):
//   st-dump PATH         reads a file or checkpoint dir; prints each tensor's dtype, shape,
//                        float64 sum and raw bytes (hex) as JSON
//   st-write OUT ...     writes tensors defined by a formula the Python side recomputes
//   st-check FILE...     header validation only; prints "ok" or "error: ..." per file
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <iostream>

#include "../../tools/hyla/command.h"
#include "hyla/io/safetensors.h"
#include "hyla/util/error.h"

namespace {

using namespace hyla::io;

std::string hex_bytes(const torch::Tensor& t) {
  static const char* digits = "0123456789abcdef";
  auto c = t.contiguous();
  const auto* p = static_cast<const uint8_t*>(c.data_ptr());
  const size_t n = size_t(c.numel()) * c.element_size();
  std::string s(2 * n, '0');
  for (size_t i = 0; i < n; ++i) {
    s[2 * i] = digits[p[i] >> 4];
    s[2 * i + 1] = digits[p[i] & 15];
  }
  return s;
}

nlohmann::json sum_f64(const torch::Tensor& t) {
  torch::Tensor x = t.is_complex() ? torch::view_as_real(t) : t;
  double s = x.to(torch::kDouble).sum().item<double>();
  if (std::isnan(s)) return "nan";
  if (std::isinf(s)) return s > 0 ? "inf" : "-inf";
  return s;
}

int dump(const std::string& path) {
  auto store = TensorStore::open(path);
  nlohmann::json out = {{"tensors", nlohmann::json::object()}};
  for (const auto& name : store.names()) {
    torch::Tensor t = store.load(name);
    out["tensors"][name] = {{"dtype", store.info(name).dtype},
                            {"shape", t.sizes().vec()},
                            {"sum", sum_f64(t)},
                            {"hex", hex_bytes(t)}};
  }
  if (std::filesystem::is_regular_file(path)) out["metadata"] = SafetensorsFile::open(path)->metadata();
  std::cout << out.dump() << "\n";
  return 0;
}

// The shared formula (tests/py/test_safetensors.py: `formula`): tensor number i, k-th
// element: j = (37 k + 11 i) mod 251; floats (j - 125) / 8, signed ints j - 125,
// unsigned j, bool j mod 3 == 0, complex (f, -f). Cast by torch on both sides.
torch::Tensor formula(int i, const std::string& dtype, std::vector<int64_t> shape) {
  int64_t numel = 1;
  for (auto d : shape) numel *= d;
  auto j = (torch::arange(numel, torch::kLong) * 37 + 11 * i) % 251;
  auto f = (j - 125).to(torch::kDouble) / 8;
  torch::Tensor v;
  if (dtype == "BOOL") v = (j % 3 == 0);
  else if (dtype[0] == 'U') v = j.to(to_torch_dtype(dtype, "formula"));
  else if (dtype[0] == 'I') v = (j - 125).to(to_torch_dtype(dtype, "formula"));
  else if (dtype == "C64") v = torch::complex(f.to(torch::kFloat), -f.to(torch::kFloat));
  else v = f.to(to_torch_dtype(dtype, "formula"));
  return v.reshape(shape);
}

// "name:DTYPE:2x3" (shape "" for a scalar); a trailing ":T" stores the transpose of the
// formula tensor of the reversed 2-D shape, i.e. a non-contiguous view.
std::pair<std::string, torch::Tensor> parse_spec(const std::string& spec, int i) {
  std::vector<std::string> parts;
  size_t at = 0;
  for (size_t c; (c = spec.find(':', at)) != std::string::npos; at = c + 1) parts.push_back(spec.substr(at, c - at));
  parts.push_back(spec.substr(at));
  HYLA_CHECK(parts.size() >= 3, "bad --tensor spec {}", spec);
  std::vector<int64_t> shape;
  for (size_t a = 0, x; a < parts[2].size(); a = x + 1) {
    x = parts[2].find('x', a);
    if (x == std::string::npos) x = parts[2].size();
    shape.push_back(std::stoll(parts[2].substr(a, x - a)));
  }
  if (parts.size() > 3 && parts[3] == "T") {
    HYLA_CHECK(shape.size() == 2, "transposed spec {} needs 2 dims", spec);
    return {parts[0], formula(i, parts[1], {shape[1], shape[0]}).t()};
  }
  return {parts[0], formula(i, parts[1], shape)};
}

int write(const std::string& out, const std::vector<std::string>& specs, uint64_t shard_bytes,
          const std::vector<std::string>& meta) {
  NamedTensors tensors;
  for (size_t i = 0; i < specs.size(); ++i) tensors.push_back(parse_spec(specs[i], int(i)));
  std::map<std::string, std::string> metadata;
  for (const auto& kv : meta) {
    auto eq = kv.find('=');
    HYLA_CHECK(eq != std::string::npos, "bad --metadata {}", kv);
    metadata[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  if (shard_bytes == 0)
    save_safetensors(out, tensors, metadata);
  else
    for (const auto& p : save_checkpoint_tensors(out, tensors, shard_bytes, metadata)) std::cout << p.filename().string() << "\n";
  return 0;
}

int check(const std::vector<std::string>& files) {
  for (const auto& f : files) {
    try {
      SafetensorsFile::open(f);
      std::cout << "ok\n";
    } catch (const hyla::Error& e) {
      std::string w = e.what();
      for (auto& c : w) if (c == '\n') c = ' ';
      std::cout << "error: " << w << "\n";
    }
  }
  return 0;
}

hyla::cli::Register reg_dump("st-dump", "dump tensors of a safetensors file or checkpoint", [](CLI::App& app) {
  auto path = std::make_shared<std::string>();
  app.add_option("path", *path)->required();
  return [=]() -> int { return dump(*path); };
});

hyla::cli::Register reg_write("st-write", "write formula tensors to a file (or a checkpoint dir with --shard-bytes)",
                              [](CLI::App& app) {
  auto out = std::make_shared<std::string>();
  auto specs = std::make_shared<std::vector<std::string>>();
  auto meta = std::make_shared<std::vector<std::string>>();
  auto shard = std::make_shared<uint64_t>(0);
  app.add_option("out", *out)->required();
  app.add_option("--tensor", *specs, "name:DTYPE:AxB[:T]");
  app.add_option("--metadata", *meta, "key=value");
  app.add_option("--shard-bytes", *shard, "write a checkpoint dir with shards of at most this size");
  return [=]() -> int { return write(*out, *specs, *shard, *meta); };
});

hyla::cli::Register reg_check("st-check", "validate safetensors headers, one line per file", [](CLI::App& app) {
  auto files = std::make_shared<std::vector<std::string>>();
  app.add_option("files", *files)->required();
  return [=]() -> int { return check(*files); };
});

}  // namespace
