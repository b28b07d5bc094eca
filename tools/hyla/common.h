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

}  // namespace hyla::cli
