// Rotary position embedding (RoPE) with the Hugging Face conventions: the "rotate_half"
// layout (first and second half of each head are the pair), inverse frequencies
// theta^(-2i/d), and the rope scalings transformers implements (linear, dynamic NTK,
// yarn, llama3). Used by softmax attention and, under HyPE, by the linear mixers.
#pragma once
#include <torch/torch.h>

#include <optional>
#include <string>

namespace hyla::model {

struct RopeParams {
  std::string type = "default";  // default | linear | dynamic | yarn | llama3
  double theta = 10000.0;
  double factor = 1.0;
  int64_t original_max_position = 0;  // yarn, llama3, dynamic
  int64_t max_position = 2048;        // config.max_position_embeddings
  double low_freq_factor = 1.0, high_freq_factor = 4.0;  // llama3
  double beta_fast = 32.0, beta_slow = 1.0;              // yarn
  std::optional<double> attention_factor;                // yarn mscale override
  std::optional<double> mscale, mscale_all_dim;          // yarn (deepseek style)
  bool truncate = true;                                  // yarn
  double partial_rotary_factor = 1.0;
};

class Rotary {
 public:
  Rotary() = default;
  Rotary(const RopeParams& p, int64_t head_dim);
  // cos, sin of shape [T, rotary_dim] (float32) for integer positions [T].
  // Dynamic NTK recomputes frequencies when positions exceed the trained length.
  std::pair<torch::Tensor, torch::Tensor> cos_sin(const torch::Tensor& positions) const;
  // Scale applied to cos/sin (yarn's attention factor); 1 otherwise.
  double attention_scaling() const { return attention_scaling_; }
  int64_t rotary_dim() const { return rotary_dim_; }
  const torch::Tensor& inv_freq() const { return inv_freq_; }

 private:
  RopeParams p_;
  int64_t head_dim_ = 0, rotary_dim_ = 0;
  torch::Tensor inv_freq_;  // [rotary_dim/2] float32
  // inv_freq_ on the device of the last call: a host-to-device copy per call would be
  // both slow and illegal inside CUDA-graph capture.
  mutable torch::Tensor inv_freq_device_;
  double attention_scaling_ = 1.0;
};

// x: [B, T, H, D]; cos, sin: [T, R] or [B, T, R] with R <= D (partial rotary rotates
// the first R channels). Computes in x's dtype like transformers does.
torch::Tensor apply_rotary(const torch::Tensor& x, const torch::Tensor& cos,
                           const torch::Tensor& sin);

}  // namespace hyla::model
