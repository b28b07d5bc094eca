// The linear-mixer factory: builds a GDN, DSLA or HypeNet mixer by kind, and reads its
// hyper-parameters from a model config's `linear_config` JSON (schema below), so the
// decoder builds hybrid layers from `layer_types` alone.
//
// linear_config: {<key>: value, ..., "gdn": {<key>: value}, "dsla": {...}, "hypenet": {...}}
// Top-level keys apply to every kind, a kind's own object overrides them. Keys:
//   num_heads, num_v_heads, num_kv_heads, head_k_dim, head_v_dim, conv_size,
//   use_short_conv, conv_bias, use_gate, allow_neg_eigval, beta_bias, norm_eps,
//   gate_logit_normalizer, gate_clamp_min, qk_norm, output_norm, output_gate, use_rope,
//   chunk_size, initializer_range.
// Defaults come from the model: heads = num_attention_heads, head dims = head_dim,
// eps = rms_norm_eps, RoPE = the model's rope (on for hypenet only), bias =
// attention_bias (hypenet).
#pragma once
#include <string>
#include <vector>

#include "hyla/model/config.h"
#include "hyla/model/mixer.h"
#include "hyla/model/mixers/mixer_config.h"

namespace hyla::model {

// "gdn", "dsla", "hypenet" (alias "lightning").
std::vector<std::string> mixer_kinds();
bool is_linear_mixer_kind(const std::string& kind);

Mixer make_mixer(const std::string& kind, const MixerConfig& c);

MixerConfig mixer_config_from_model(const ModelConfig& mc, int64_t layer, const std::string& kind);

// Installs make_mixer(kind, mixer_config_from_model(...)) as the decoder's linear mixer
// factory. Also done by a static initialiser when this file is linked in.
void register_linear_mixers();

}  // namespace hyla::model
