// The small building blocks of a Llama-style decoder: RMSNorm and the SwiGLU MLP,
// with Hugging Face's parameter names so checkpoints load 1:1.
#pragma once
#include <torch/torch.h>

namespace hyla::model {

// y = w * (x / sqrt(mean(x^2) + eps)), statistics in float32, result cast back to x's
// dtype before the weight multiply (as transformers' LlamaRMSNorm).
torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps);
// The zero-centred form Qwen3-Next uses: y = (x / sqrt(mean(x^2) + eps)) * (1 + w), all in
// float32, cast back to x's dtype at the end (transformers' Qwen3NextRMSNorm); w = 0 is
// the identity, so its stored weights are the usual ones minus 1.
torch::Tensor rms_norm_unit_offset(const torch::Tensor& x, const torch::Tensor& weight, double eps);

class RMSNormImpl : public torch::nn::Module {
 public:
  // unit_offset: the weight is stored as w - 1 and applied as 1 + w (Qwen3-Next); it then
  // starts at 0 rather than 1.
  RMSNormImpl(int64_t dim, double eps, bool unit_offset = false);
  torch::Tensor forward(const torch::Tensor& x) {
    return unit_offset_ ? rms_norm_unit_offset(x, weight, eps_) : rms_norm(x, weight, eps_);
  }
  bool unit_offset() const { return unit_offset_; }
  torch::Tensor weight;

 private:
  double eps_;
  bool unit_offset_;
};
TORCH_MODULE(RMSNorm);

// down(SiLU(gate(x)) * up(x)).
class MlpImpl : public torch::nn::Module {
 public:
  MlpImpl(int64_t hidden, int64_t intermediate, bool bias);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
};
TORCH_MODULE(Mlp);

torch::nn::Linear make_linear(int64_t in, int64_t out, bool bias);

}  // namespace hyla::model
