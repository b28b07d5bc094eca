#include "hyla/model/qwen3_next_tensors.h"

#include <nlohmann/json.hpp>

#include <set>

#include "hyla/io/atomic_file.h"
#include "hyla/model/mixers/registry.h"
#include "hyla/model/qwen3_next_config.h"
#include "hyla/util/error.h"

namespace hyla::model {
namespace fs = std::filesystem;

namespace {

// Rows of each part grouped `groups` ways and concatenated within each group: part i
// [groups·n_i, ...] -> [groups, n_i, ...]; the result is [groups·Σn_i, ...].
torch::Tensor interleave(const std::vector<torch::Tensor>& parts, int64_t groups) {
  std::vector<torch::Tensor> views;
  for (auto& p : parts) {
    auto shape = p.sizes().vec();
    shape[0] /= groups;
    shape.insert(shape.begin(), groups);
    views.push_back(p.reshape(shape));
  }
  auto fused = torch::cat(views, 1);
  auto shape = fused.sizes().vec();
  shape[1] *= groups;
  shape.erase(shape.begin());
  return fused.reshape(shape).contiguous();
}

// The inverse: fused [groups·Σn_i, ...] -> parts [groups·n_i, ...].
std::vector<torch::Tensor> deinterleave(const torch::Tensor& fused, int64_t groups, const std::vector<int64_t>& sizes) {
  auto shape = fused.sizes().vec();
  shape[0] /= groups;
  shape.insert(shape.begin(), groups);
  auto parts = fused.reshape(shape).split_with_sizes(sizes, 1);
  std::vector<torch::Tensor> out;
  for (auto& p : parts) {
    auto s = p.sizes().vec();
    s[1] *= groups;
    s.erase(s.begin());
    out.push_back(p.reshape(s).contiguous());
  }
  return out;
}

struct Shapes {
  int64_t H, Hkv, D;              // attention
  int64_t gH, gHV, dk, dv, conv;  // GDN (from linear_config)
};

Shapes shapes_of(const ModelConfig& c) {
  Shapes s{c.num_attention_heads, c.num_key_value_heads, c.head_dim, 0, 0, 0, 0, 0};
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    if (c.is_attention_layer(i)) continue;
    auto g = mixer_config_from_model(c, i, "gdn");
    s.gH = g.n_heads, s.gHV = g.value_heads(), s.dk = g.head_k_dim, s.dv = g.v_dim(), s.conv = g.conv_size;
    break;
  }
  return s;
}

// ------------------------------------------------------------------ hyla -> Qwen3-Next

class Writer {
 public:
  explicit Writer(CausalLM& m) : c_(m->config()) {
    for (auto& p : m->named_parameters(true)) params_[p.key()] = p.value().detach().to(torch::kCPU);
  }
  bool has(const std::string& n) const { return params_.count(n) > 0; }
  torch::Tensor take(const std::string& n) {
    auto it = params_.find(n);
    HYLA_CHECK(it != params_.end(), "qwen3-next export: the model has no tensor {}", n);
    used_.insert(n);
    return it->second;
  }
  torch::Tensor take_or_zeros(const std::string& n, int64_t size) {
    return has(n) ? take(n) : torch::zeros({size}, params_.begin()->second.options());
  }
  // A norm weight in Qwen3-Next's zero-centred form.
  torch::Tensor centred(const std::string& n) { return c_.rms_norm_unit_offset ? take(n) : take(n) - 1.0; }
  void put(const std::string& n, torch::Tensor t) { out_.emplace_back(n, t.contiguous()); }
  void copy(const std::string& n) { put(n, take(n)); }
  io::NamedTensors finish() {
    for (auto& [n, _] : params_)
      HYLA_CHECK(used_.count(n), "qwen3-next export: tensor {} has no counterpart in Qwen3NextForCausalLM", n);
    return std::move(out_);
  }

 private:
  const ModelConfig& c_;
  std::map<std::string, torch::Tensor> params_;
  std::set<std::string> used_;
  io::NamedTensors out_;
};

void write_attention(Writer& w, const ModelConfig& c, const Shapes& s, const std::string& p) {
  auto q = w.take(p + "q_proj.weight");
  bool gated = w.has(p + "o_gate.weight");
  // No gate: σ(0) = 1/2 halves the heads' output, o_proj × 2 restores it, both exactly.
  auto gate = gated ? w.take(p + "o_gate.weight") : torch::zeros_like(q);
  w.put(p + "q_proj.weight", interleave({q, gate}, s.H));
  w.copy(p + "k_proj.weight");
  w.copy(p + "v_proj.weight");
  auto o = w.take(p + "o_proj.weight");
  w.put(p + "o_proj.weight", gated ? o : o * 2.0);
  if (c.attention_bias || c.attention_out_bias) {
    int64_t qd = s.H * s.D, kvd = s.Hkv * s.D;
    w.put(p + "q_proj.bias", interleave({w.take_or_zeros(p + "q_proj.bias", qd), w.take_or_zeros(p + "o_gate.bias", qd)}, s.H));
    w.put(p + "k_proj.bias", w.take_or_zeros(p + "k_proj.bias", kvd));
    w.put(p + "v_proj.bias", w.take_or_zeros(p + "v_proj.bias", kvd));
    w.put(p + "o_proj.bias", w.take_or_zeros(p + "o_proj.bias", c.hidden_size));
  }
  w.put(p + "q_norm.weight", w.centred(p + "q_norm.weight"));
  w.put(p + "k_norm.weight", w.centred(p + "k_norm.weight"));
}

void write_gdn(Writer& w, const Shapes& s, const std::string& p) {
  w.put(p + "in_proj_qkvz.weight", interleave({w.take(p + "q_proj.weight"), w.take(p + "k_proj.weight"),
                                               w.take(p + "v_proj.weight"), w.take(p + "g_proj.weight")},
                                              s.gH));
  w.put(p + "in_proj_ba.weight", interleave({w.take(p + "b_proj.weight"), w.take(p + "a_proj.weight")}, s.gH));
  w.put(p + "conv1d.weight",
        torch::cat({w.take(p + "q_conv1d.weight"), w.take(p + "k_conv1d.weight"), w.take(p + "v_conv1d.weight")}, 0));
  w.copy(p + "A_log");
  w.copy(p + "dt_bias");
  w.put(p + "norm.weight", w.take(p + "o_norm.weight"));  // gated norm: weight w, not 1 + w
  w.put(p + "out_proj.weight", w.take(p + "o_proj.weight"));
}

// ------------------------------------------------------------------ Qwen3-Next -> hyla

class Reader {
 public:
  Reader(const fs::path& dir) : dir_(dir), store_(io::TensorStore::open(dir)) {}
  torch::Tensor take(const std::string& n, std::vector<int64_t> shape) {
    HYLA_CHECK(store_.has(n), "checkpoint {}: missing tensor {}", dir_.string(), n);
    auto t = store_.load(n);
    HYLA_CHECK(t.is_floating_point(), "checkpoint {}: tensor {} is stored as {}; weights must be floating point",
               dir_.string(), n, store_.info(n).dtype);
    HYLA_CHECK(t.sizes() == torch::IntArrayRef(shape), "checkpoint {}: tensor {} has shape {} but the config implies {}",
               dir_.string(), n, t.sizes(), torch::IntArrayRef(shape));
    used_.insert(n);
    return t;
  }
  void check_unexpected(bool tied) {
    for (auto& n : store_.names()) {
      if (used_.count(n) || n.rfind("mtp.", 0) == 0) continue;
      bool benign = n == "lm_head.weight" && tied;  // some writers keep the tied copy
      HYLA_CHECK(benign, "checkpoint {}: unexpected tensor {} (not part of a dense Qwen3-Next model with this config)",
                 dir_.string(), n);
    }
  }

 private:
  fs::path dir_;
  io::TensorStore store_;
  std::set<std::string> used_;
};

void read_attention(Reader& r, std::map<std::string, torch::Tensor>& out, const ModelConfig& c, const Shapes& s,
                    const std::string& p) {
  int64_t d = c.hidden_size, qd = s.H * s.D, kvd = s.Hkv * s.D;
  auto qg = deinterleave(r.take(p + "q_proj.weight", {2 * qd, d}), s.H, {s.D, s.D});
  out[p + "q_proj.weight"] = qg[0];
  out[p + "o_gate.weight"] = qg[1];
  out[p + "k_proj.weight"] = r.take(p + "k_proj.weight", {kvd, d});
  out[p + "v_proj.weight"] = r.take(p + "v_proj.weight", {kvd, d});
  out[p + "o_proj.weight"] = r.take(p + "o_proj.weight", {d, qd});
  if (c.attention_bias) {
    auto qb = deinterleave(r.take(p + "q_proj.bias", {2 * qd}), s.H, {s.D, s.D});
    out[p + "q_proj.bias"] = qb[0];
    out[p + "o_gate.bias"] = qb[1];
    out[p + "k_proj.bias"] = r.take(p + "k_proj.bias", {kvd});
    out[p + "v_proj.bias"] = r.take(p + "v_proj.bias", {kvd});
    out[p + "o_proj.bias"] = r.take(p + "o_proj.bias", {d});
  }
  out[p + "q_norm.weight"] = r.take(p + "q_norm.weight", {s.D});
  out[p + "k_norm.weight"] = r.take(p + "k_norm.weight", {s.D});
}

void read_gdn(Reader& r, std::map<std::string, torch::Tensor>& out, const ModelConfig& c, const Shapes& s,
              const std::string& p) {
  int64_t d = c.hidden_size, rep = s.gHV / s.gH, key_dim = s.gH * s.dk, value_dim = s.gHV * s.dv;
  auto qkvz = deinterleave(r.take(p + "in_proj_qkvz.weight", {2 * key_dim + 2 * value_dim, d}), s.gH,
                           {s.dk, s.dk, rep * s.dv, rep * s.dv});
  out[p + "q_proj.weight"] = qkvz[0];
  out[p + "k_proj.weight"] = qkvz[1];
  out[p + "v_proj.weight"] = qkvz[2];
  out[p + "g_proj.weight"] = qkvz[3];
  auto ba = deinterleave(r.take(p + "in_proj_ba.weight", {2 * s.gHV, d}), s.gH, {rep, rep});
  out[p + "b_proj.weight"] = ba[0];
  out[p + "a_proj.weight"] = ba[1];
  auto conv = r.take(p + "conv1d.weight", {2 * key_dim + value_dim, 1, s.conv}).split_with_sizes({key_dim, key_dim, value_dim}, 0);
  out[p + "q_conv1d.weight"] = conv[0].contiguous();
  out[p + "k_conv1d.weight"] = conv[1].contiguous();
  out[p + "v_conv1d.weight"] = conv[2].contiguous();
  out[p + "A_log"] = r.take(p + "A_log", {s.gHV});
  out[p + "dt_bias"] = r.take(p + "dt_bias", {s.gHV});
  out[p + "o_norm.weight"] = r.take(p + "norm.weight", {s.dv});
  out[p + "o_proj.weight"] = r.take(p + "out_proj.weight", {d, value_dim});
}

}  // namespace

io::NamedTensors qwen3_next_tensors(CausalLM& m) {
  const ModelConfig& c = m->config();
  qwen3_next_config(c);  // refuses what the layout cannot express
  Shapes s = shapes_of(c);
  Writer w(m);
  w.copy("model.embed_tokens.weight");
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    std::string l = fmt::format("model.layers.{}.", i);
    w.put(l + "input_layernorm.weight", w.centred(l + "input_layernorm.weight"));
    if (c.is_attention_layer(i)) write_attention(w, c, s, l + "self_attn.");
    else write_gdn(w, s, l + "linear_attn.");
    w.put(l + "post_attention_layernorm.weight", w.centred(l + "post_attention_layernorm.weight"));
    for (const char* proj : {"gate_proj", "up_proj", "down_proj"}) w.copy(l + "mlp." + proj + ".weight");
  }
  w.put("model.norm.weight", w.centred("model.norm.weight"));
  if (!c.tie_word_embeddings) w.copy("lm_head.weight");
  return w.finish();
}

std::map<std::string, torch::Tensor> tensors_from_qwen3_next(const fs::path& dir, const ModelConfig& c) {
  Shapes s = shapes_of(c);
  Reader r(dir);
  std::map<std::string, torch::Tensor> out;
  int64_t d = c.hidden_size, I = c.intermediate_size;
  out["model.embed_tokens.weight"] = r.take("model.embed_tokens.weight", {c.vocab_size, d});
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    std::string l = fmt::format("model.layers.{}.", i);
    for (const char* n : {"input_layernorm.weight", "post_attention_layernorm.weight"}) out[l + n] = r.take(l + n, {d});
    if (c.is_attention_layer(i)) read_attention(r, out, c, s, l + "self_attn.");
    else read_gdn(r, out, c, s, l + "linear_attn.");
    out[l + "mlp.gate_proj.weight"] = r.take(l + "mlp.gate_proj.weight", {I, d});
    out[l + "mlp.up_proj.weight"] = r.take(l + "mlp.up_proj.weight", {I, d});
    out[l + "mlp.down_proj.weight"] = r.take(l + "mlp.down_proj.weight", {d, I});
  }
  out["model.norm.weight"] = r.take("model.norm.weight", {d});
  if (!c.tie_word_embeddings) out["lm_head.weight"] = r.take("lm_head.weight", {c.vocab_size, d});
  r.check_unexpected(c.tie_word_embeddings);
  return out;
}

bool is_qwen3_next_checkpoint(const fs::path& dir) {
  fs::path file = fs::is_directory(dir) ? dir / "config.json" : dir;
  if (!fs::exists(file)) return false;
  try {
    return is_qwen3_next_config(nlohmann::json::parse(io::read_text_file(file)));
  } catch (const nlohmann::json::exception&) {
    return false;  // ModelConfig::load reports the parse error
  }
}

}  // namespace hyla::model
