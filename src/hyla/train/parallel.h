// What the trainer needs from data parallelism, and nothing more. A single process
// uses `SingleProcess` (every call a no-op); src/hyla/dist implements it over c10d.
#pragma once
#include <torch/torch.h>

#include <string>
#include <vector>

#include "hyla/train/adamw.h"

namespace hyla::train {

class DataParallel {
 public:
  virtual ~DataParallel() = default;
  virtual int rank() const { return 0; }
  virtual int world_size() const { return 1; }
  virtual std::string describe() const { return "single process"; }
  // The device this process trains on, given the recipe's choice (data parallel on
  // GPUs pins each rank to cuda:LOCAL_RANK).
  virtual torch::Device local_device(torch::Device wanted) const { return wanted; }
  // Once, before training: make every rank start from rank 0's parameters and set up
  // gradient hooks/buckets for `params`.
  virtual void prepare(const std::vector<NamedParam>& params) {}
  // Around the last micro-batch's backward: gradients of that backward are reduced
  // (averaged over ranks) while it runs; finish waits for them.
  virtual void begin_gradient_sync() {}
  virtual void finish_gradient_sync() {}
  // ZeRO-1: which parameters this rank updates; after the step, owners broadcast.
  virtual std::vector<bool> owned(const std::vector<NamedParam>& params) {
    return std::vector<bool>(params.size(), true);
  }
  virtual void after_optimizer_step(const std::vector<NamedParam>& params) {}
  // Mean over ranks of a scalar (losses for logging).
  virtual double mean(double v) { return v; }
  virtual double sum(double v) { return v; }
  // Sum over ranks of squared-gradient norms owned elsewhere is not needed: gradients
  // are already averaged, so the norm is the same on every rank.
  // Stops with an error if the ranks' parameters differ.
  virtual void check_in_sync(const std::vector<NamedParam>& params, int64_t step) {}
  virtual void barrier() {}
  // For a checkpoint: the optimizer state of every parameter, complete on rank 0 (with
  // ZeRO-1 the owners' shards are gathered there). A collective: every rank calls it.
  virtual std::vector<std::pair<std::string, torch::Tensor>> gather_optimizer_state(const AdamW& opt) {
    return opt.state_tensors();
  }
};

}  // namespace hyla::train
