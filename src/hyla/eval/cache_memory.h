// Decode-cache memory of a model (eval.md §Speed and memory): KV bytes per token of its
// attention layers plus the constant recurrent state of its linear mixers, at a few
// context lengths, beside what the same shapes cost as an all-attention model.
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <vector>

#include "hyla/model/decoder.h"

namespace hyla::eval {

struct CacheMemory {
  int64_t elem_size = 2;             // cache element size: bf16/fp16 on GPU
  int64_t kv_bytes_per_token = 0;    // attention layers
  int64_t state_bytes = 0;           // per sequence: fp32 recurrent states + conv tails
  int64_t all_attention_bytes_per_token = 0;  // every layer kept as the teacher's attention
  int64_t attention_layers = 0;
  int64_t bytes_at(int64_t context) const { return kv_bytes_per_token * context + state_bytes; }
  int64_t all_attention_bytes_at(int64_t context) const { return all_attention_bytes_per_token * context; }
  nlohmann::json to_json(const std::vector<int64_t>& contexts) const;
};

// From the model's mixers (each knows its cache cost), for cache element size `elem`.
CacheMemory decode_cache_memory(const model::CausalLM& m, int64_t elem = 2);

// The context lengths `hyla info` and reports show: 4K, 32K, 128K.
const std::vector<int64_t>& standard_contexts();

}  // namespace hyla::eval
