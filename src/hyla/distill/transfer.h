// Attention weight transfer (pipeline.md §2, methods.md §1.2): the teacher's W_q, W_k,
// W_v, W_o become a linear mixer's projections, k/v expanded from Hkv to Hq heads in
// the chosen GQA layout. What each mixer can hold of the rest (docs/convert.md):
//   gdn      q/k/v/o; biases and Qwen3 q/k norms dropped (fla's GDN has neither; its
//            L2 norm replaces the q/k norm, as Taylor-Calibrate's student does);
//   dsla     q/k/v/o; biases and q/k norms dropped (the layer has neither);
//   hypenet  q/k/v/o, q/k/v biases (o bias when the teacher has one), Qwen3 q_norm /
//            k_norm (HALO copies them); RoPE stays on in the mixer, so its q and k are
//            exactly the teacher's.
#pragma once
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <string>

#include "hyla/distill/convert.h"
#include "hyla/model/attention.h"
#include "hyla/model/config.h"
#include "hyla/model/mixer.h"

namespace hyla::distill {

// [Hkv·Dh, ...] rows -> [Hq·Dh, ...] in the given layout (weights [rows, d] or biases).
torch::Tensor expand_kv(const torch::Tensor& w, int64_t n_kv, int64_t n_heads, GqaLayout layout);

// The linear_config under which transfer is exact for `teacher` (per kind in `kinds`):
// H = Hq query/key heads, HV = Hq value heads (GDN), HypeNet kv heads expanded to Hq,
// head dims = the teacher's, HypeNet q/k norm iff the teacher has one.
nlohmann::json transfer_linear_config(const model::ModelConfig& teacher, const std::vector<std::string>& kinds);

// Copies teacher attention `t` into mixer `m` of student layer `layer`. Fails, naming
// the layer, when the mixer's heads cannot hold the teacher's (e.g. a different head dim).
void transfer_attention(const model::AttentionImpl& t, const model::ModelConfig& teacher, model::MixerImpl& m,
                        int64_t layer, GqaLayout layout);

// New-parameter inits that follow transfer (convert.h): conv as identity; W_g Kaiming
// (random-gate) or zero (zero-gate). No-ops where the mixer has no such tensor.
void set_conv_identity(model::MixerImpl& m);
void set_output_gate(model::MixerImpl& m, const std::string& init, int64_t layer);

}  // namespace hyla::distill
