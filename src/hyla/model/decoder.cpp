#include "hyla/model/decoder.h"

#include <atomic>
#include <set>

#include <ATen/autocast_mode.h>

#include "hyla/io/safetensors.h"
#include "hyla/model/attention.h"
#include "hyla/model/checkpoint_tensors.h"
#include "hyla/model/layer_recomputes.h"
#include "hyla/model/mixers/registry.h"
#include "hyla/model/qwen3_next_tensors.h"
#include "hyla/util/error.h"
#include "hyla/util/log.h"

namespace hyla::model {
namespace fs = std::filesystem;

namespace {

std::atomic<int64_t> layer_recomputes{0};

// Recomputes one decoder layer in the backward pass instead of storing its
// activations (the reentrant scheme of torch.utils.checkpoint): forward runs without
// recording, backward re-runs the layer with grad enabled and back-propagates through
// it, accumulating parameter gradients and returning the input's gradient.
struct LayerCheckpoint : public torch::autograd::Function<LayerCheckpoint> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, torch::Tensor x, int64_t layer,
                               torch::Tensor positions) {
    ctx->save_for_backward({x, positions});
    ctx->saved_data["layer"] = layer;
    // The backward runs on autograd's thread, where autocast is off: recompute under
    // the same autocast state as the forward so the recomputed activations match.
    ctx->saved_data["autocast"] = at::autocast::is_autocast_enabled(at::kCUDA);
    auto* l = reinterpret_cast<DecoderLayerImpl*>(layer);
    torch::NoGradGuard ng;
    MixerContext mctx;
    mctx.positions = positions;
    return l->forward(x, mctx);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad) {
    layer_recomputes.fetch_add(1, std::memory_order_relaxed);
    auto saved = ctx->get_saved_variables();
    auto x = saved[0].detach().requires_grad_(true);
    auto* l = reinterpret_cast<DecoderLayerImpl*>(ctx->saved_data["layer"].toInt());
    torch::Tensor y;
    {
      torch::AutoGradMode on(true);
      bool ac = ctx->saved_data["autocast"].toBool();
      if (ac) {
        at::autocast::set_autocast_enabled(at::kCUDA, true);
        at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
      }
      MixerContext mctx;
      mctx.positions = saved[1];
      y = l->forward(x, mctx);
      if (ac) at::autocast::set_autocast_enabled(at::kCUDA, false);
    }
    torch::autograd::backward({y}, {grad[0]});
    return {x.grad(), torch::Tensor(), torch::Tensor()};
  }
};

LinearMixerFactory& linear_factory() {
  static LinearMixerFactory f;
  return f;
}
}  // namespace

void set_linear_mixer_factory(LinearMixerFactory f) { linear_factory() = std::move(f); }

Mixer build_mixer(const ModelConfig& c, int64_t layer) {
  std::string kind = c.layer_type(layer);
  if (kind == "full_attention" || kind == "sliding_attention") {
    std::shared_ptr<MixerImpl> attn = std::make_shared<AttentionImpl>(c, layer);
    return Mixer(attn);
  }
  // Referencing the registry links it into every binary (a static library drops unused objects).
  if (!linear_factory()) register_linear_mixers();
  HYLA_CHECK(static_cast<bool>(linear_factory()), "layer {}: linear mixer \"{}\" requested but no mixer registry is linked",
             layer, kind);
  return linear_factory()(kind, c, layer);
}

std::string DecoderLayerImpl::mixer_name(const std::string& kind) {
  return kind == "full_attention" || kind == "sliding_attention" ? "self_attn" : "linear_attn";
}

DecoderLayerImpl::DecoderLayerImpl(const ModelConfig& c, int64_t layer) {
  input_layernorm = register_module("input_layernorm", RMSNorm(c.hidden_size, c.rms_norm_eps, c.rms_norm_unit_offset));
  set_mixer(build_mixer(c, layer));
  mlp = register_module("mlp", Mlp(c.hidden_size, c.intermediate_size, c.mlp_bias));
  post_attention_layernorm =
      register_module("post_attention_layernorm", RMSNorm(c.hidden_size, c.rms_norm_eps, c.rms_norm_unit_offset));
}

void DecoderLayerImpl::set_mixer(Mixer m) {
  if (!mixer_name_.empty()) unregister_module(mixer_name_);
  mixer_name_ = mixer_name(m->kind());
  mixer_ = register_module(mixer_name_, m);
}

torch::Tensor DecoderLayerImpl::forward(const torch::Tensor& x, const MixerContext& ctx, torch::Tensor* mixer_out) {
  auto h = mixer_->forward(input_layernorm(x), ctx);
  if (mixer_out) *mixer_out = h;
  auto y = x + h;
  return y + mlp(post_attention_layernorm(y));
}

CausalLMImpl::CausalLMImpl(const ModelConfig& c) : config_(c) {
  body_ = register_module("model", std::make_shared<torch::nn::Module>());
  embed_tokens = body_->register_module("embed_tokens", torch::nn::Embedding(c.vocab_size, c.hidden_size));
  auto list = body_->register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    layers_.push_back(DecoderLayer(c, i));
    list->push_back(layers_.back());
  }
  norm = body_->register_module("norm", RMSNorm(c.hidden_size, c.rms_norm_eps, c.rms_norm_unit_offset));
  if (!c.tie_word_embeddings) lm_head = register_module("lm_head", make_linear(c.hidden_size, c.vocab_size, false));
}

torch::Tensor CausalLMImpl::embed(const torch::Tensor& ids) { return embed_tokens(ids); }

torch::Tensor CausalLMImpl::head(const torch::Tensor& h) {
  return lm_head.is_empty() ? torch::nn::functional::linear(h, embed_tokens->weight) : lm_head(h);
}

torch::Tensor CausalLMImpl::forward(const torch::Tensor& ids, const ForwardOptions& opt) {
  HYLA_CHECK(ids.dim() == 2, "input_ids must be [batch, time], got {}", ids.sizes());
  HYLA_CHECK(!opt.cu_seqlens.defined() || ids.size(0) == 1, "packed sequences (cu_seqlens) need batch 1");
  int64_t T = ids.size(1);
  int64_t start = opt.cache ? opt.cache->position : 0;
  MixerContext ctx;
  ctx.cu_seqlens = opt.cu_seqlens;
  auto dev = ids.device();
  ctx.static_cache = opt.static_cache;
  if (opt.positions.defined()) {
    ctx.positions = opt.positions;
  } else if (opt.cu_seqlens.defined()) {
    // Positions restart at every packed sequence.
    auto idx = torch::arange(T, torch::TensorOptions().dtype(torch::kInt64).device(dev));
    auto bounds = opt.cu_seqlens.to(dev);
    auto seq = torch::searchsorted(bounds.narrow(0, 1, bounds.size(0) - 1), idx, false, true);
    ctx.positions = idx - bounds.index_select(0, seq);
  } else {
    ctx.positions = torch::arange(start, start + T, torch::TensorOptions().dtype(torch::kInt64).device(dev));
  }
  auto h = embed(ids);
  for (size_t i = 0; i < layers_.size(); ++i) {
    ctx.cache = opt.cache ? &opt.cache->layers[i] : nullptr;
    torch::Tensor mo;
    if (opt.checkpoint_layers && torch::GradMode::is_enabled() && !opt.cache && !opt.cu_seqlens.defined() &&
        !opt.mixer_outputs) {
      h = LayerCheckpoint::apply(h, reinterpret_cast<int64_t>(layers_[i].get()), ctx.positions);
    } else {
      h = layers_[i]->forward(h, ctx, opt.mixer_outputs ? &mo : nullptr);
    }
    if (opt.mixer_outputs) opt.mixer_outputs->push_back(mo);
    if (opt.hidden_states) opt.hidden_states->push_back(h);
  }
  if (opt.cache) opt.cache->position += T;
  h = norm(h);
  if (!opt.compute_logits) return h;
  if (opt.logits_last_n > 0 && opt.logits_last_n < T) h = h.narrow(1, T - opt.logits_last_n, opt.logits_last_n);
  return head(h);
}

std::vector<std::pair<std::string, torch::Tensor>> CausalLMImpl::state_tensors() const {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (auto& p : named_parameters(true)) out.emplace_back(p.key(), p.value());
  for (auto& b : named_buffers(true)) out.emplace_back(b.key(), b.value());
  return out;
}

int64_t CausalLMImpl::num_parameters() const {
  int64_t n = 0;
  for (auto& p : parameters(true)) n += p.numel();
  return n;
}

torch::ScalarType dtype_from_name(const std::string& n) {
  if (n == "float32" || n == "fp32" || n == "f32") return torch::kFloat32;
  if (n == "bfloat16" || n == "bf16") return torch::kBFloat16;
  if (n == "float16" || n == "fp16" || n == "f16") return torch::kFloat16;
  if (n == "float64" || n == "fp64") return torch::kFloat64;
  fail("unknown dtype \"{}\" (have: float32, bfloat16, float16, float64)", n);
}

std::string dtype_name(torch::ScalarType t) {
  switch (t) {
    case torch::kFloat32: return "float32";
    case torch::kBFloat16: return "bfloat16";
    case torch::kFloat16: return "float16";
    case torch::kFloat64: return "float64";
    default: fail("weights cannot be saved as {} (have: float32, bfloat16, float16, float64)", c10::toString(t));
  }
}

int64_t checkpointed_layer_recomputes() { return layer_recomputes.load(std::memory_order_relaxed); }

CausalLM load_causal_lm(const fs::path& dir, torch::Device device, std::optional<torch::ScalarType> dtype) {
  auto config = ModelConfig::load(dir);
  torch::NoGradGuard no_grad;
  CausalLM m(config);
  if (is_qwen3_next_checkpoint(dir)) {
    // Fused Qwen3-Next tensors, split into hyla's (shapes and names checked there).
    auto tensors = tensors_from_qwen3_next(dir, config);
    for (auto& p : m->named_parameters(true)) {
      auto it = tensors.find(p.key());
      HYLA_CHECK(it != tensors.end(), "checkpoint {}: no Qwen3-Next tensor gives {}", dir.string(), p.key());
      p.value().copy_(it->second);
    }
  } else {
    auto store = io::TensorStore::open(dir);
    check_checkpoint_tensors(dir, m, store);  // shapes and names from the headers, before any copy
    for (auto& p : m->named_parameters(true)) {
      auto t = store.load(p.key());
      p.value().copy_(t);
    }
  }
  m->to(device, dtype.value_or(torch::kFloat32));
  m->eval();
  return m;
}

void save_causal_lm(CausalLM& m, const fs::path& dir, uint64_t max_shard_bytes, std::optional<torch::ScalarType> dtype) {
  fs::create_directories(dir);
  io::NamedTensors tensors;
  for (auto& [name, t] : m->state_tensors()) {
    auto c = t.detach().to(torch::kCPU);
    if (dtype) c = c.to(*dtype);
    tensors.emplace_back(name, c.contiguous());
  }
  auto config = m->config();
  if (dtype) config.torch_dtype = dtype_name(*dtype);
  io::save_checkpoint_tensors(dir, tensors, max_shard_bytes);
  config.save(dir);
}

}  // namespace hyla::model
