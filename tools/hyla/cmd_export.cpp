// `hyla export MODEL --format fla|qwen3-next --out DIR`: writes a hybrid (attention + Gated
// DeltaNet layers) as a flash-linear-attention GatedDeltaNetForCausalLM checkpoint
// (docs/hybrid.md "Export to fla") or a transformers Qwen3NextForCausalLM checkpoint
// (docs/qwen3-next.md), or refuses, naming the layer and the feature the format cannot
// express.
#include <algorithm>
#include <cstdio>

#include "command.h"
#include "common.h"
#include "hyla/model/export_fla.h"
#include "hyla/model/export_qwen3_next.h"
#include "hyla/util/error.h"

namespace hyla::cli {
namespace {

struct ExportArgs {
  std::string model, out, format = "fla", dtype = "auto";
};

int run_export(const ExportArgs& a) {
  HYLA_CHECK(a.format == "fla" || a.format == "qwen3-next", "--format \"{}\" is not supported (have: fla, qwen3-next)",
             a.format);
  check_distinct_output(a.model, a.out);
  auto cfg = model::ModelConfig::load(a.model);
  auto m = model::load_causal_lm(a.model, torch::kCPU, torch::kFloat32);
  std::string dtype_name = a.dtype == "auto" ? cfg.torch_dtype : a.dtype;
  auto dtype = model::dtype_from_name(dtype_name);
  bool fla = a.format == "fla";
  if (fla) model::export_fla(m, a.out, dtype);
  else model::export_qwen3_next(m, a.out, dtype);
  copy_tokenizer_files(a.model, a.out);  // they carry over unchanged
  std::string kinds = layer_kinds_string(cfg);
  int64_t n_attn = std::count(kinds.begin(), kinds.end(), 'A');
  std::printf("wrote %s: %s, %lld layers (%lld attention, %lld gdn)  [%s]  %s\n", a.out.c_str(),
              fla ? "fla GatedDeltaNetForCausalLM" : "transformers Qwen3NextForCausalLM", (long long)cfg.num_hidden_layers,
              (long long)n_attn,
              (long long)(cfg.num_hidden_layers - n_attn), kinds.c_str(), dtype_name.c_str());
  return 0;
}

Register reg("export",
             "write a hybrid in another library's checkpoint format (fla's GatedDeltaNetForCausalLM, "
             "transformers' Qwen3NextForCausalLM)",
             [](CLI::App& app) {
               auto a = std::make_shared<ExportArgs>();
               app.add_option("model", a->model, "model directory (hyla hybrid or teacher)")->required();
               app.add_option("-o,--out", a->out, "output directory")->required();
               app.add_option("--format", a->format, "target format: fla | qwen3-next")->capture_default_str();
               app.add_option("--dtype", a->dtype, "saved dtype: auto (the model's) | float32 | bfloat16 | float16")
                   ->capture_default_str();
               return [=]() { return run_export(*a); };
             });

}  // namespace
}  // namespace hyla::cli
