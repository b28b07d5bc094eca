#include "hyla/eval/cache_memory.h"

#include <string>

namespace hyla::eval {

CacheMemory decode_cache_memory(const model::CausalLM& m, int64_t elem) {
  const auto& cfg = m->config();
  CacheMemory c;
  c.elem_size = elem;
  for (int64_t i = 0; i < m->num_layers(); ++i) {
    auto mix = m->layer(i)->mixer();
    c.kv_bytes_per_token += mix->cache_bytes_per_token(elem);
    // Recurrent states are float32 whatever the model dtype (the mixers count them so);
    // short-conv tails are kept in the activation dtype.
    c.state_bytes += mix->state_bytes(elem);
    c.attention_layers += cfg.is_attention_layer(i);
  }
  c.all_attention_bytes_per_token = cfg.num_hidden_layers * 2 * cfg.num_key_value_heads * cfg.head_dim * elem;
  return c;
}

nlohmann::json CacheMemory::to_json(const std::vector<int64_t>& contexts) const {
  nlohmann::json j = {{"element_bytes", elem_size}, {"kv_cache_bytes_per_token", kv_bytes_per_token},
                      {"state_bytes_per_sequence", state_bytes}, {"attention_layers", attention_layers},
                      {"all_attention_bytes_per_token", all_attention_bytes_per_token}};
  for (int64_t ctx : contexts) {
    j["decode_cache_bytes"][std::to_string(ctx)] = bytes_at(ctx);
    j["all_attention_decode_cache_bytes"][std::to_string(ctx)] = all_attention_bytes_at(ctx);
  }
  return j;
}

const std::vector<int64_t>& standard_contexts() {
  static const std::vector<int64_t> v = {4096, 32768, 131072};
  return v;
}

}  // namespace hyla::eval
