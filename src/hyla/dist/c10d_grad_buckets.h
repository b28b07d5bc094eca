// Gradient averaging that overlaps the backward pass, as PyTorch's DDP reducer does:
//
// - Parameters are packed into flat buckets (about [dist] bucket_mb each) in REVERSE
//   order of registration, which is roughly the order backward produces their
//   gradients; the first bucket is small (1 MiB) so communication starts early.
// - Each parameter's .grad is a view into its bucket ("gradient as bucket view"), so
//   accumulation over micro-batches writes straight into the buffer that is sent and
//   no copy is needed before or after the all-reduce.
// - A post-accumulate-grad hook on every parameter counts the bucket's pending
//   gradients during the last micro-batch's backward; when a bucket is complete, it is
//   scaled by 1/world and its all-reduce (SUM) is launched asynchronously. Buckets are
//   launched strictly in index order so every rank issues the same collectives in the
//   same sequence (a requirement of Gloo and NCCL).
// - finish() launches buckets whose parameters got no gradient in that backward (their
//   views still hold earlier micro-batches' sums, or zeros), then waits for all.
#pragma once
#include <torch/torch.h>

#include <mutex>
#include <vector>

#include "hyla/dist/c10d_comm.h"
#include "hyla/train/adamw.h"

namespace hyla::dist {

// Which parameters share a bucket: indices into `params`, reverse order, split when the
// dtype or device changes or the bucket would pass its byte cap. The first bucket's cap
// is min(first_cap, cap).
std::vector<std::vector<size_t>> assign_buckets(const std::vector<torch::Tensor>& params, int64_t cap_bytes,
                                                int64_t first_cap_bytes);

class GradientBuckets {
 public:
  GradientBuckets(Comm& comm, const std::vector<train::NamedParam>& params, int64_t cap_bytes);
  ~GradientBuckets();
  GradientBuckets(const GradientBuckets&) = delete;
  GradientBuckets& operator=(const GradientBuckets&) = delete;

  // The next backward's gradients are reduced as they become ready.
  void begin();
  // Launches what is left, waits, and leaves averaged gradients in every .grad.
  void finish();
  // After the optimizer's zero_grad (which drops .grad): gradients become zeroed
  // bucket views again.
  void reattach();
  size_t num_buckets() const { return buckets_.size(); }
  // Buckets whose all-reduce has been launched in this step so far (for tests: those
  // launched before finish() overlapped the backward pass).
  size_t launched() const { return next_launch_; }

  // Called by the autograd engine (its thread) once a parameter's .grad is accumulated.
  void on_grad_ready(size_t param);

 private:
  struct Bucket {
    torch::Tensor flat;
    std::vector<size_t> members;
    size_t pending = 0;
    bool ready = false;
    Comm::WorkPtr work;
  };
  void adopt_grad(size_t param);  // makes .grad the bucket view (copying if it is not)
  void launch_ready_in_order();
  std::string bucket_label(size_t b) const;

  Comm& comm_;
  std::vector<torch::Tensor> params_;
  std::vector<torch::Tensor> views_;  // per parameter, into its bucket
  std::vector<size_t> bucket_of_;
  std::vector<char> seen_;
  std::vector<Bucket> buckets_;
  size_t next_launch_ = 0;
  bool active_ = false;
  bool warned_unused_ = false;
  std::mutex mu_;
};

}  // namespace hyla::dist
