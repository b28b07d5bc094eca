// Small helpers the subcommands share: device/dtype options, loading a model directory.
#pragma once
#include <CLI/CLI.hpp>

#include <filesystem>
#include <memory>
#include <string>

#include "hyla/io/tokenizer.h"
#include "hyla/model/decoder.h"

namespace hyla::cli {

struct ModelArgs {
  std::string path;
  std::string device = "auto";  // auto | cpu | cuda | cuda:N
  std::string dtype = "auto";   // auto (bf16 on GPU, float32 on CPU) | float32 | bfloat16 | float16
  void add(CLI::App& app, bool positional = true);
  torch::Device torch_device() const;
  torch::ScalarType torch_dtype() const;
  model::CausalLM load() const;
  std::shared_ptr<io::Tokenizer> tokenizer() const;  // <path>/tokenizer.json
};

std::string human_bytes(double bytes);

// For commands that write a checkpoint derived from another (hybrid, export): refuses an
// output directory that is the input's, which would overwrite the model being read.
void check_distinct_output(const std::string& in, const std::string& out);
// Copies the tokenizer and generation defaults (tokenizer.json, tokenizer_config.json,
// special_tokens_map.json, generation_config.json) that exist in `from` into `to`.
void copy_tokenizer_files(const std::string& from, const std::string& to);
// One letter per layer: A = attention, g = gdn, d = dsla, h = hypenet ("AgggA").
std::string layer_kinds_string(const model::ModelConfig& c);

}  // namespace hyla::cli
