// The shape of a hybrid student (pipeline.md §0): the teacher's embeddings, norms, MLPs
// and head, with each layer either keeping softmax attention or getting a linear mixer.
// This file decides the layer kinds and builds the student from the teacher; how the
// linear mixers are then initialised and distilled lives in distill/.
#pragma once
#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

#include "hyla/model/config.h"
#include "hyla/model/decoder.h"

namespace hyla::model {

// Uniform interleave (pipeline.md §1, methods.md §5.2): layers 0, every, 2·every, ...
// keep attention, the others become `mixer`.
std::vector<std::string> interleave_layer_types(int64_t n_layers, int64_t every, const std::string& mixer);
// Layers in `attention_layers` keep attention, the others become `mixer`.
std::vector<std::string> layer_types_keeping(int64_t n_layers, const std::vector<int64_t>& attention_layers,
                                             const std::string& mixer);

struct HybridOptions {
  std::vector<std::string> layer_types;           // one per layer
  nlohmann::json linear_config = nlohmann::json::object();  // mixers' hyper-parameters (registry.h)
  // HyPE (hypenet.md, methods.md §6.1): RoPE in the linear layers, none in attention,
  // whose query logits get `hype_logit_scale`: "position" (s_t = ln(t + a)/ln(a),
  // a = hype_logn_base, at inference only), "constant" (hype_scale_constant, always) or
  // "none"; attention layers also get HALO's output gate unless attention_output_gate
  // says otherwise.
  bool hype = false;
  double hype_logn_base = 500;
  std::string hype_logit_scale = "position";
  double hype_scale_constant = 0;  // required (> 0) for "constant"
  // HALO's sigmoid output gate on the attention layers: o_proj(attn ⊙ σ(o_gate(x))).
  // Unset: on with HyPE, off otherwise. A teacher that has one keeps it.
  std::optional<bool> attention_output_gate;
  // A per-head RMSNorm on q and k in the attention layers, unit weights (Qwen3-Next's
  // attention always has one). A teacher's own QK-norm (Qwen3) is kept as it is.
  bool attention_qk_norm = false;
};

// How a new attention output gate starts (hybrid_from_teacher):
// "neutral": o_gate = 0 and o_proj × 2, so σ(0) = 1/2 leaves the layer's output exactly
// the teacher's; "halo": o_gate ~ N(0, 0.02) and o_proj unchanged, as HALO starts it
// (σ ≈ 1/2 halves the attention output until training adjusts it).
inline const char* kAttentionGateInits = "neutral, halo";

// The student's config: the teacher's, with model_type hyla_hybrid and the given layers.
// Checks every mixer's hyper-parameters (errors name the layer).
ModelConfig hybrid_config(const ModelConfig& teacher, const HybridOptions& opt);

// Builds the student of `config` and copies from `teacher` every tensor the two share:
// embeddings, norms, MLPs, head, and the mixer of each layer whose kind is unchanged.
// Linear mixers that replace attention keep their fresh (fla-style) init. Returns the
// student on the CPU in float32.
// Tensors the teacher lacks and the student's config adds to attention layers start as:
// q_norm/k_norm unit weights (1, or 0 in zero-centred form); o_gate per `gate_init`.
CausalLM hybrid_from_teacher(CausalLM& teacher, const ModelConfig& config, const std::string& gate_init = "neutral");

}  // namespace hyla::model
