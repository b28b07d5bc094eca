// The decoder's configuration, read from / written to an HF `config.json`.
//
// One struct covers the Llama, Qwen2 and Qwen3 families and hyla's hybrids: what
// differs between them is data (attention bias, QK-norm, tied head, rope scaling,
// per-layer mixer kinds), not code paths.
#pragma once
#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>
#include <vector>

#include "hyla/model/rope.h"

namespace hyla::model {

struct ModelConfig {
  std::string model_type = "llama";  // llama | qwen2 | qwen3 | hyla_hybrid
  std::string architecture = "LlamaForCausalLM";
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t head_dim = 0;
  int64_t max_position_embeddings = 2048;
  double rms_norm_eps = 1e-6;
  RopeParams rope;
  bool attention_bias = false;    // bias on q/k/v (Qwen2: true)
  bool attention_out_bias = false;  // bias on o_proj (Llama's attention_bias covers o too)
  bool mlp_bias = false;
  bool qk_norm = false;           // Qwen3: RMSNorm over head_dim on q and k before RoPE
  bool tie_word_embeddings = false;
  int64_t sliding_window = 0;     // for "sliding_attention" layers; 0 = none
  std::string torch_dtype = "float32";
  std::vector<int64_t> bos_token_id, eos_token_id;
  // Per layer: "full_attention", "sliding_attention", or a linear mixer kind
  // ("gdn", "dsla", "hypenet"). Empty means all full attention.
  std::vector<std::string> layer_types;
  // Hybrid-only settings (mixer hyper-parameters, HyPE), kept as JSON so that the
  // mixer factory owns their schema.
  nlohmann::json linear_config = nlohmann::json::object();
  // HyPE: attention layers use no RoPE (hypenet.md).
  bool attention_nope = false;
  // Attention logit scale (HyPE, methods.md §6.1, HALO's attn_logits_scaling): queries
  // at position t are multiplied by s_t. "none": s = 1; "constant": s = the constant, in
  // training and inference; "position": s_t = ln(t + a)/ln(a) at inference only (the
  // model in eval mode), none while training, as HALO trains with it off and switches it
  // on for inference.
  std::string attention_logit_scale = "none";
  double attention_logn_base = 0.0;  // a, for "position"
  double attention_logit_scale_constant = 1.0;
  // Sigmoid output gate on attention (HALO's o_gate, Qwen3-Next's gated attention):
  // o_proj(attn ⊙ σ(o_gate(x))); o_gate has a bias when attention_bias is set.
  bool attention_output_gate = false;
  // Zero-centred RMSNorms (Qwen3-Next): decoder and attention q/k norms store w - 1 and
  // apply 1 + w. Set for checkpoints read from the Qwen3-Next layout.
  bool rms_norm_unit_offset = false;

  // Reads and validates; errors name the file and the field.
  static ModelConfig from_json(const nlohmann::json& j, const std::string& label);
  static ModelConfig load(const std::filesystem::path& dir_or_file);
  nlohmann::json to_json() const;
  void save(const std::filesystem::path& dir) const;

  std::string layer_type(int64_t layer) const;
  bool is_attention_layer(int64_t layer) const;
  int64_t num_params() const;  // computed from shapes (the teacher's layers)
  // Bytes of KV cache one token costs in attention layers, for element size `elem`.
  int64_t kv_bytes_per_token(int64_t elem) const;
  void validate(const std::string& label) const;
};

// RoPE parameters of an HF config (transformers 5's "rope_parameters", or 4.x's
// "rope_theta" + "rope_scaling"), and back to "rope_parameters".
RopeParams parse_rope(const nlohmann::json& j, const std::string& label, int64_t max_pos);
nlohmann::json rope_to_json(const RopeParams& r);

}  // namespace hyla::model
