// `hyla hybrid TEACHER --out DIR`: the hybrid student's skeleton. Chooses which layers
// keep softmax attention (uniform interleave or an explicit list), builds the linear
// mixers in the others, copies everything the two models share from the teacher, and
// writes an HF-style checkpoint (config.json with layer_types, safetensors, tokenizer).
#include <algorithm>
#include <cstdio>

#include "command.h"
#include "common.h"
#include "layer_choice.h"
#include "hyla/io/atomic_file.h"
#include "hyla/model/hybrid.h"
#include "hyla/util/error.h"

namespace hyla::cli {
namespace {
namespace fs = std::filesystem;

struct HybridArgs {
  ModelArgs teacher;
  LayerChoiceArgs layers;
  std::string out, dtype = "auto", gate_init = "neutral";
  uint64_t seed = 0;
};

int run_hybrid(const HybridArgs& a) {
  check_distinct_output(a.teacher.path, a.out);
  auto tc = model::ModelConfig::load(a.teacher.path);
  model::HybridOptions opt;
  a.layers.apply(tc, opt);
  auto hc = model::hybrid_config(tc, opt);
  auto teacher = model::load_causal_lm(a.teacher.path, torch::kCPU, torch::kFloat32);
  torch::manual_seed(a.seed);
  auto student = model::hybrid_from_teacher(teacher, hc, a.gate_init);
  std::optional<torch::ScalarType> dtype;
  dtype = model::dtype_from_name(a.dtype == "auto" ? tc.torch_dtype : a.dtype);
  model::save_causal_lm(student, a.out, 2ull << 30, dtype);
  copy_tokenizer_files(a.teacher.path, a.out);  // they carry over unchanged
  std::string kinds = layer_kinds_string(hc);
  int64_t n_attn = std::count(kinds.begin(), kinds.end(), 'A');
  std::printf("wrote %s: %lld layers, %lld attention, %lld linear  [%s]  (A = attention, g = gdn, d = dsla, h = hypenet)\n",
              a.out.c_str(), (long long)hc.num_hidden_layers, (long long)n_attn,
              (long long)(hc.num_hidden_layers - n_attn), kinds.c_str());
  std::printf("parameters %lld (teacher %lld); linear mixers are freshly initialised%s%s%s\n",
              (long long)student->num_parameters(), (long long)teacher->num_parameters(),
              a.layers.hype ? "; HyPE: RoPE in linear layers, none in attention" : "",
              hc.attention_output_gate && !tc.attention_output_gate ? "; attention output gate added" : "",
              hc.qk_norm && !tc.qk_norm ? "; attention QK-norm added (unit weights)" : "");
  return 0;
}

Register reg("hybrid", "make a hybrid student from a teacher: choose attention layers, build linear mixers",
             [](CLI::App& app) {
               auto a = std::make_shared<HybridArgs>();
               app.add_option("teacher", a->teacher.path, "teacher model directory")->required();
               app.add_option("-o,--out", a->out, "output directory")->required();
               a->layers.add(app);
               app.add_option("--attention-gate-init", a->gate_init,
                              "new attention output gates start neutral (o_gate 0, o_proj x2: output unchanged) | "
                              "halo (N(0, 0.02))")
                   ->capture_default_str();
               app.add_option("--seed", a->seed, "seed for the linear mixers' init")->capture_default_str();
               app.add_option("--dtype", a->dtype, "saved dtype: auto (the teacher's) | float32 | bfloat16")
                   ->capture_default_str();
               return [=]() { return run_hybrid(*a); };
             });

}  // namespace
}  // namespace hyla::cli
