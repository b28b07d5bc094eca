#include "common.h"

#include "hyla/io/atomic_file.h"
#include "hyla/util/error.h"

namespace hyla::cli {

void ModelArgs::add(CLI::App& app, bool positional) {
  if (positional) app.add_option("model", path, "model directory (config.json, *.safetensors, tokenizer.json)")->required();
  else app.add_option("-m,--model", path, "model directory")->required();
  app.add_option("--device", device, "auto | cpu | cuda | cuda:N")->capture_default_str();
  app.add_option("--dtype", dtype, "auto | float32 | bfloat16 | float16")->capture_default_str();
}

torch::Device ModelArgs::torch_device() const {
  if (device == "auto") return torch::cuda::is_available() ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
  try {
    torch::Device d(device);
    HYLA_CHECK(!d.is_cuda() || torch::cuda::is_available(), "--device {}: no CUDA device is available", device);
    return d;
  } catch (const c10::Error&) {
    fail("--device \"{}\" is not a device (try cpu or cuda)", device);
  }
}

torch::ScalarType ModelArgs::torch_dtype() const {
  if (dtype == "auto") return torch_device().is_cuda() ? torch::kBFloat16 : torch::kFloat32;
  return model::dtype_from_name(dtype);
}

model::CausalLM ModelArgs::load() const { return model::load_causal_lm(path, torch_device(), torch_dtype()); }

std::shared_ptr<io::Tokenizer> ModelArgs::tokenizer() const {
  auto p = std::filesystem::path(path) / "tokenizer.json";
  HYLA_CHECK(std::filesystem::exists(p), "{}: no tokenizer.json in the model directory", p.string());
  return io::Tokenizer::load(p);
}

void check_distinct_output(const std::string& in, const std::string& out) {
  namespace fs = std::filesystem;
  std::error_code ec;
  bool same = fs::exists(out) && fs::equivalent(fs::path(in), fs::path(out), ec);
  HYLA_CHECK(!same, "--out {} is the input model's directory; writing there would overwrite the model being read", out);
}

void copy_tokenizer_files(const std::string& from, const std::string& to) {
  namespace fs = std::filesystem;
  for (const char* f : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"}) {
    fs::path p = fs::path(from) / f;
    if (fs::exists(p)) io::write_text_atomic(fs::path(to) / f, io::read_text_file(p));
  }
}

std::string layer_kinds_string(const model::ModelConfig& c) {
  std::string s;
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) s += c.is_attention_layer(i) ? 'A' : c.layer_type(i)[0];
  return s;
}

std::string human_bytes(double b) {
  const char* u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int i = 0;
  while (b >= 1024 && i < 4) { b /= 1024; ++i; }
  return i == 0 ? fmt::format("{:.0f} B", b) : fmt::format("{:.2f} {}", b, u[i]);
}

}  // namespace hyla::cli
