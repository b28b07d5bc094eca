// `hyla info MODEL`: what a checkpoint is and what it costs to decode with.
#include <cstdio>

#include "command.h"
#include "common.h"
#include "hyla/eval/cache_memory.h"
#include "hyla/io/safetensors.h"
#include "hyla/model/checkpoint_tensors.h"
#include "hyla/util/progress.h"

namespace hyla::cli {
namespace {

int run_info(const ModelArgs& a, bool as_json) {
  auto cfg = model::ModelConfig::load(a.path);
  model::CausalLM m(cfg);  // float32 skeleton on CPU: shapes only, weights not read
  auto store = io::TensorStore::open(a.path);
  // A summary of a checkpoint that cannot load would mislead: refuse as `hyla ppl` does.
  model::check_checkpoint_tensors(a.path, m, store);
  std::string file_dtype = store.names().empty() ? "?" : store.info(store.names().front()).dtype;
  // Decode caches are kept in bf16/fp16 on GPU (element size 2).
  auto mem = eval::decode_cache_memory(m, 2);
  int64_t kv_tok = mem.kv_bytes_per_token, state = mem.state_bytes, n_attn = mem.attention_layers;
  int64_t teacher_tok = mem.all_attention_bytes_per_token;
  std::vector<std::string> kinds;
  for (int64_t i = 0; i < m->num_layers(); ++i) kinds.push_back(m->layer(i)->mixer()->kind());
  nlohmann::json j = {{"path", a.path}, {"architecture", cfg.architecture}, {"model_type", cfg.model_type},
                      {"parameters", m->num_parameters()}, {"dtype", file_dtype},
                      {"layers", cfg.num_hidden_layers}, {"attention_layers", n_attn},
                      {"hidden_size", cfg.hidden_size}, {"heads", cfg.num_attention_heads},
                      {"kv_heads", cfg.num_key_value_heads}, {"head_dim", cfg.head_dim},
                      {"vocab_size", cfg.vocab_size}, {"rope", cfg.rope.type}, {"rope_theta", cfg.rope.theta},
                      {"tied_embeddings", cfg.tie_word_embeddings}, {"qk_norm", cfg.qk_norm},
                      {"kv_cache_bytes_per_token", kv_tok}, {"state_bytes_per_sequence", state},
                      {"layer_types", kinds}};
  for (int64_t ctx : eval::standard_contexts()) {
    j["decode_cache_bytes"][std::to_string(ctx)] = kv_tok * ctx + state;
    j["teacher_decode_cache_bytes"][std::to_string(ctx)] = teacher_tok * ctx;
  }
  if (as_json) {
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  std::printf("%-26s %s (%s)\n", "architecture", cfg.architecture.c_str(), cfg.model_type.c_str());
  std::printf("%-26s %s (%lld)\n", "parameters", human_count(double(m->num_parameters())).c_str(),
              (long long)m->num_parameters());
  std::printf("%-26s %s\n", "weights dtype", file_dtype.c_str());
  std::printf("%-26s %lld (%lld attention, %lld linear)\n", "layers", (long long)cfg.num_hidden_layers,
              (long long)n_attn, (long long)(cfg.num_hidden_layers - n_attn));
  std::printf("%-26s hidden %lld, heads %lld, kv heads %lld, head dim %lld, vocab %lld\n", "shape",
              (long long)cfg.hidden_size, (long long)cfg.num_attention_heads, (long long)cfg.num_key_value_heads,
              (long long)cfg.head_dim, (long long)cfg.vocab_size);
  std::printf("%-26s %s, theta %g%s%s\n", "position", cfg.rope.type.c_str(), cfg.rope.theta,
              cfg.qk_norm ? ", qk-norm" : "", cfg.tie_word_embeddings ? ", tied head" : "");
  std::printf("%-26s %s per token (bf16)\n", "KV cache", human_bytes(double(kv_tok)).c_str());
  std::printf("%-26s %s per sequence (fp32 states, bf16 conv tails)\n", "recurrent state", human_bytes(double(state)).c_str());
  std::printf("\n%-10s %16s %16s\n", "context", "this model", "all-attention");
  for (int64_t ctx : eval::standard_contexts())
    std::printf("%-10s %16s %16s\n", (std::to_string(ctx / 1024) + "K").c_str(),
                human_bytes(double(kv_tok * ctx + state)).c_str(), human_bytes(double(teacher_tok * ctx)).c_str());
  return 0;
}

Register reg("info", "describe a checkpoint: architecture, parameters, dtype, decode-cache memory",
             [](CLI::App& app) {
               auto a = std::make_shared<ModelArgs>();
               auto as_json = std::make_shared<bool>(false);
               app.add_option("model", a->path, "model directory")->required();
               app.add_flag("--json", *as_json, "print JSON");
               return [=]() { return run_info(*a, *as_json); };
             });

}  // namespace
}  // namespace hyla::cli
