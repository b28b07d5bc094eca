// AdamW with decoupled weight decay (Loshchilov & Hutter), state kept by parameter
// name so it saves into a checkpoint readably and survives a change of world size.
// Runs PyTorch's fused AdamW kernel (CPU and CUDA). For ZeRO-1 each rank updates only
// the parameters it owns (`set_owned`); the caller then broadcasts them.
#pragma once
#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

#include "hyla/train/recipe.h"

namespace hyla::train {

struct NamedParam {
  std::string name;
  torch::Tensor tensor;
  bool decay = true;  // matrices decay; norms, biases, gates' scalars do not
  // Multiplies the step's learning rate for this parameter (a "parameter group" LR, as
  // distillation stages give the new mixers a larger LR than the rest).
  double lr_scale = 1.0;
};

// Decay for 2-D weights except embeddings' tied use is the common choice; here:
// every parameter with dim >= 2 decays, 1-D ones (norm weights, biases, A_log...) don't.
std::vector<NamedParam> named_params_for_training(torch::nn::Module& m);

class AdamW {
 public:
  AdamW(std::vector<NamedParam> params, const OptimConfig& cfg);
  // One update with learning rate `lr` from the parameters' .grad(). Parameters with
  // no gradient are skipped.
  void step(double lr);
  void zero_grad();
  // ZeRO-1: only parameters with owned[i] keep state and are updated here.
  void set_owned(const std::vector<bool>& owned);
  const std::vector<NamedParam>& params() const { return params_; }
  int64_t steps_taken() const { return steps_; }
  int64_t state_bytes() const;  // bytes of exp_avg + exp_avg_sq held by this process

  // "exp_avg.<name>", "exp_avg_sq.<name>" for owned params (CPU copies).
  std::vector<std::pair<std::string, torch::Tensor>> state_tensors() const;
  // Restores from a lookup (name -> tensor or undefined). An owned parameter with neither
  // moment saved had no gradient yet and stays without state; one moment without the
  // other is an error naming it.
  void load_state(const std::function<torch::Tensor(const std::string&)>& lookup, int64_t steps);

 private:
  void ensure_state(size_t i);
  std::vector<NamedParam> params_;
  std::vector<bool> owned_;
  std::vector<torch::Tensor> exp_avg_, exp_avg_sq_, step_t_;
  OptimConfig cfg_;
  int64_t steps_ = 0;
};

}  // namespace hyla::train
