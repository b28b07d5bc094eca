// `hyla hybrid TEACHER --out DIR`: the hybrid student's skeleton. Chooses which layers
// keep softmax attention (uniform interleave or an explicit list), builds the linear
// mixers in the others, copies everything the two models share from the teacher, and
// writes an HF-style checkpoint (config.json with layer_types, safetensors, tokenizer).
#include <algorithm>
#include <cstdio>
#include <sstream>

#include "command.h"
#include "common.h"
#include "hyla/io/atomic_file.h"
#include "hyla/model/hybrid.h"
#include "hyla/util/error.h"

namespace hyla::cli {
namespace {
namespace fs = std::filesystem;

struct HybridArgs {
  ModelArgs teacher;
  std::string out, mixer = "gdn", layer_types, linear_config, dtype = "auto";
  int64_t every = -1;  // unset: 4
  std::vector<int64_t> attention_layers;
  bool hype = false;
  double hype_base = 500;
  uint64_t seed = 0;
};

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

int run_hybrid(const HybridArgs& a) {
  check_distinct_output(a.teacher.path, a.out);
  auto tc = model::ModelConfig::load(a.teacher.path);
  int given = (a.every >= 0) + !a.attention_layers.empty() + !a.layer_types.empty();
  HYLA_CHECK(given <= 1, "give one of --attention-every, --attention-layers, --layer-types");
  model::HybridOptions opt;
  if (!a.layer_types.empty()) opt.layer_types = split_commas(a.layer_types);
  else if (!a.attention_layers.empty())
    opt.layer_types = model::layer_types_keeping(tc.num_hidden_layers, a.attention_layers, a.mixer);
  else opt.layer_types = model::interleave_layer_types(tc.num_hidden_layers, a.every >= 0 ? a.every : 4, a.mixer);
  if (!a.linear_config.empty()) {
    std::string text = a.linear_config[0] == '@' ? io::read_text_file(a.linear_config.substr(1)) : a.linear_config;
    try {
      opt.linear_config = nlohmann::json::parse(text);
    } catch (const nlohmann::json::parse_error& e) {
      fail("--linear-config: invalid JSON: {}", e.what());
    }
  }
  opt.hype = a.hype;
  opt.hype_logn_base = a.hype_base;
  auto hc = model::hybrid_config(tc, opt);
  auto teacher = model::load_causal_lm(a.teacher.path, torch::kCPU, torch::kFloat32);
  torch::manual_seed(a.seed);
  auto student = model::hybrid_from_teacher(teacher, hc);
  std::optional<torch::ScalarType> dtype;
  dtype = model::dtype_from_name(a.dtype == "auto" ? tc.torch_dtype : a.dtype);
  model::save_causal_lm(student, a.out, 2ull << 30, dtype);
  copy_tokenizer_files(a.teacher.path, a.out);  // they carry over unchanged
  std::string kinds = layer_kinds_string(hc);
  int64_t n_attn = std::count(kinds.begin(), kinds.end(), 'A');
  std::printf("wrote %s: %lld layers, %lld attention, %lld linear  [%s]  (A = attention, g = gdn, d = dsla, h = hypenet)\n",
              a.out.c_str(), (long long)hc.num_hidden_layers, (long long)n_attn,
              (long long)(hc.num_hidden_layers - n_attn), kinds.c_str());
  std::printf("parameters %lld (teacher %lld); linear mixers are freshly initialised%s\n",
              (long long)student->num_parameters(), (long long)teacher->num_parameters(),
              a.hype ? "; HyPE: RoPE in linear layers, none in attention" : "");
  return 0;
}

Register reg("hybrid", "make a hybrid student from a teacher: choose attention layers, build linear mixers",
             [](CLI::App& app) {
               auto a = std::make_shared<HybridArgs>();
               app.add_option("teacher", a->teacher.path, "teacher model directory")->required();
               app.add_option("-o,--out", a->out, "output directory")->required();
               app.add_option("--mixer", a->mixer, "linear mixer for converted layers: gdn | dsla | hypenet")
                   ->capture_default_str();
               app.add_option("--attention-every", a->every,
                              "keep layers 0, k, 2k, ... as attention (default 4: 1 in 4)");
               app.add_option("--attention-layers", a->attention_layers, "layers that keep attention, e.g. 0,5")
                   ->delimiter(',');
               app.add_option("--layer-types", a->layer_types,
                              "every layer's kind, comma-separated (full_attention, sliding_attention, gdn, dsla, hypenet)");
               app.add_option("--linear-config", a->linear_config,
                              "mixer hyper-parameters as JSON, or @file.json (keys: see `hyla info` docs)");
               app.add_flag("--hype", a->hype, "HyPE: RoPE in linear layers, NoPE + log-length query scaling in attention");
               app.add_option("--hype-base", a->hype_base, "HyPE's a in ln(t+a)/ln(a)")->capture_default_str();
               app.add_option("--seed", a->seed, "seed for the linear mixers' init")->capture_default_str();
               app.add_option("--dtype", a->dtype, "saved dtype: auto (the teacher's) | float32 | bfloat16")
                   ->capture_default_str();
               return [=]() { return run_hybrid(*a); };
             });

}  // namespace
}  // namespace hyla::cli
