// The decoder-only language model: embeddings, a stack of pre-norm layers (each one
// token mixer + SwiGLU MLP), final norm, LM head. Parameter names follow Hugging Face
// (`model.layers.N.self_attn.q_proj.weight`, ...); linear mixers live under
// `model.layers.N.linear_attn.*` (as in Qwen3-Next), so one checkpoint layout serves
// teachers and hybrids.
#pragma once
#include <torch/torch.h>

#include <filesystem>
#include <functional>

#include "hyla/model/cache.h"
#include "hyla/model/config.h"
#include "hyla/model/layers.h"
#include "hyla/model/mixer.h"

namespace hyla::model {

// Builds the mixer of layer `i` from the config (attention, or a linear mixer through
// the mixer registry). Replaceable so conversion can build students.
Mixer build_mixer(const ModelConfig& c, int64_t layer);
// Registered by the linear-mixer module (mixers/registry.cpp); null until linked.
using LinearMixerFactory = std::function<Mixer(const std::string& kind, const ModelConfig& c, int64_t layer)>;
void set_linear_mixer_factory(LinearMixerFactory f);

class DecoderLayerImpl : public torch::nn::Module {
 public:
  DecoderLayerImpl(const ModelConfig& c, int64_t layer);
  // x [B,T,d] -> [B,T,d]. `mixer_out`, if given, receives the mixer's output (before
  // the residual add): the quantity per-layer distillation aligns.
  torch::Tensor forward(const torch::Tensor& x, const MixerContext& ctx, torch::Tensor* mixer_out = nullptr);
  Mixer mixer() const { return mixer_; }
  // Swaps the mixer (e.g. attention -> GDN), re-registering it under the right name.
  void set_mixer(Mixer m);
  static std::string mixer_name(const std::string& kind);

  RMSNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
  Mlp mlp{nullptr};

 private:
  Mixer mixer_{nullptr};
  std::string mixer_name_;
};
TORCH_MODULE(DecoderLayer);

struct ForwardOptions {
  ModelCache* cache = nullptr;        // decode cache; nullptr for a stateless forward
  torch::Tensor cu_seqlens;           // packed variable-length batch (B must be 1)
  std::vector<torch::Tensor>* hidden_states = nullptr;  // per layer output, if wanted
  std::vector<torch::Tensor>* mixer_outputs = nullptr;  // per layer mixer output
  bool compute_logits = true;         // false: return the final hidden state
  int64_t logits_last_n = 0;          // >0: logits of the last n positions only
  // Static-shape decoding (see MixerContext::static_cache): positions come from this
  // device tensor [T] instead of the cache's host counter.
  bool static_cache = false;
  torch::Tensor positions;
  // Activation checkpointing: keep only each layer's input during a training forward
  // and recompute the layer in the backward pass (less memory, ~1/3 more compute).
  bool checkpoint_layers = false;
};

class CausalLMImpl : public torch::nn::Module {
 public:
  explicit CausalLMImpl(const ModelConfig& c);
  // input_ids [B, T] (int64) -> logits [B, T, V] (float32 on CPU; model dtype elsewhere).
  torch::Tensor forward(const torch::Tensor& input_ids, const ForwardOptions& opt = {});
  torch::Tensor embed(const torch::Tensor& input_ids);
  torch::Tensor head(const torch::Tensor& hidden);
  const ModelConfig& config() const { return config_; }
  ModelConfig& mutable_config() { return config_; }
  int64_t num_layers() const { return static_cast<int64_t>(layers_.size()); }
  DecoderLayer layer(int64_t i) const { return layers_.at(i); }
  ModelCache new_cache() const { return ModelCache(layers_.size()); }
  // HF-named tensors for saving (tied head omitted).
  std::vector<std::pair<std::string, torch::Tensor>> state_tensors() const;
  int64_t num_parameters() const;

  torch::nn::Embedding embed_tokens{nullptr};  // registered as model.embed_tokens
  RMSNorm norm{nullptr};                       // model.norm
  torch::nn::Linear lm_head{nullptr};          // null when tied to embed_tokens

 private:
  ModelConfig config_;
  std::shared_ptr<torch::nn::Module> body_;    // "model": embed_tokens, layers, norm
  std::vector<DecoderLayer> layers_;
};
TORCH_MODULE(CausalLM);

// Loads config.json + safetensors (sharded or not) into a model on `device` in
// `dtype`. Missing or mis-shaped tensors: error naming the tensor and the layer.
CausalLM load_causal_lm(const std::filesystem::path& dir, torch::Device device = torch::kCPU,
                        std::optional<torch::ScalarType> dtype = std::nullopt);
// Writes config.json + model.safetensors (sharded past `max_shard_bytes`), atomically.
void save_causal_lm(CausalLM& m, const std::filesystem::path& dir, uint64_t max_shard_bytes = 2ull << 30,
                    std::optional<torch::ScalarType> dtype = std::nullopt);
torch::ScalarType dtype_from_name(const std::string& name);
// The config.json name of a floating-point dtype ("float32", "bfloat16", ...).
std::string dtype_name(torch::ScalarType t);

}  // namespace hyla::model
