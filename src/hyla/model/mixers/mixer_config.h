// Hyper-parameters of the linear-attention mixers (GDN, DSLA, HypeNet's Lightning
// attention). One struct for all three; each mixer reads the fields it needs and the
// factory (registry.h) fills it from a model config.
#pragma once
#include <cstdint>
#include <string>

#include "hyla/model/rope.h"

namespace hyla::model {

struct MixerConfig {
  std::string name = "mixer";  // names the layer in error messages, e.g. "layer 3 (gdn)"
  int64_t hidden = 0;          // d
  int64_t n_heads = 0;         // H: query/key heads
  int64_t n_value_heads = 0;   // GDN's HV (grouped value heads); 0 = n_heads
  int64_t n_kv_heads = 0;      // HypeNet's k/v projection heads before GQA expansion; 0 = n_heads
  int64_t head_k_dim = 0;      // dk
  int64_t head_v_dim = 0;      // dv (HypeNet and DSLA use dk; 0 = head_k_dim)

  // GDN (gdn.md; fla layer defaults).
  bool use_short_conv = true;
  int64_t conv_size = 4;
  bool conv_bias = false;
  bool use_gate = true;           // output gate SiLU(W_g x) on the normed output
  bool allow_neg_eigval = false;  // β = 2σ(·)
  bool beta_bias = false;         // a bias on b_proj (not in fla; Taylor-Calibrate §3.9 (i))
  double norm_eps = 1e-5;         // o_norm eps (fla layer 1e-5; fla models pass 1e-6)

  // DSLA (dsla.md).
  double gate_logit_normalizer = 16;
  double gate_clamp_min = -50;

  // HypeNet Lightning attention (hypenet.md; methods.md §6.1).
  bool qk_norm = true;       // per-head RMSNorm on q and k (weights from Qwen3 q_norm/k_norm)
  bool output_norm = true;   // one RMSNorm over all heads
  bool output_gate = true;   // y = W_o(o ⊙ σ(W_z x))
  bool attention_bias = false;
  double rms_eps = 1e-6;

  // RoPE on q and k (HyPE puts it in the RNN layers; any mixer may use it).
  bool use_rope = false;
  RopeParams rope;

  double init_std = 0.02;  // N(0, init_std) for projections (fla / HF model init)
  int64_t chunk_size = 64;

  int64_t value_heads() const { return n_value_heads > 0 ? n_value_heads : n_heads; }
  int64_t kv_heads() const { return n_kv_heads > 0 ? n_kv_heads : n_heads; }
  int64_t v_dim() const { return head_v_dim > 0 ? head_v_dim : head_k_dim; }
};

}  // namespace hyla::model
