// Data parallelism over c10d: every rank holds the full model, reads its own slice of
// each global batch (the sampler's rank/world_size), and averages gradients with its
// peers during the backward pass (c10d_grad_buckets.h). With [dist] zero1 the AdamW
// moments are sharded (c10d_zero1.h).
#include <cstdlib>
#include <memory>
#include <optional>

#include "hyla/dist/c10d_comm.h"
#include "hyla/dist/c10d_grad_buckets.h"
#include "hyla/dist/c10d_zero1.h"
#include "hyla/dist/launch.h"
#include "hyla/util/error.h"
#include "hyla/util/log.h"
#include "hyla/util/progress.h"

namespace hyla::dist {

namespace {

// The device this rank trains on: the recipe's choice, with CUDA pinned to
// cuda:LOCAL_RANK (one GPU per process).
torch::Device rank_device(const std::string& wanted, const LaunchEnv& env) {
  bool cuda = wanted == "auto" ? torch::cuda::is_available() : torch::Device(wanted).is_cuda();
  if (!cuda) return torch::kCPU;
  int n = int(torch::cuda::device_count());
  HYLA_CHECK(env.local_rank < n, "rank {}: LOCAL_RANK={} but this node has {} CUDA device(s); start at most {} "
             "processes per node (torchrun --nproc-per-node)", env.rank, env.local_rank, n, n);
  return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(env.local_rank));
}

std::string mib(int64_t bytes) { return fmt::format("{:.2f} MiB", double(bytes) / (1 << 20)); }

// A checksum of a tensor's exact bits: ranks that hold the same values agree, and one
// flipped ulp anywhere changes it.
torch::Tensor bit_checksum(const torch::Tensor& t) {
  auto c = t.detach().contiguous().reshape({-1});
  switch (c.element_size()) {
    case 8: return c.view(torch::kInt64).sum();
    case 4: return c.view(torch::kInt32).sum(torch::kInt64);
    case 2: return c.view(torch::kInt16).sum(torch::kInt64);
    default: return c.view(torch::kInt8).sum(torch::kInt64);
  }
}

class C10dDataParallel final : public train::DataParallel {
 public:
  explicit C10dDataParallel(const train::Recipe& r)
      : env_(LaunchEnv::from_environment()), cfg_(r.dist),
        comm_(env_, rank_device(r.run.device, env_), std::chrono::seconds(std::max<int64_t>(1, r.dist.timeout_s))) {
    HYLA_CHECK(cfg_.bucket_mb > 0, "{}: [dist] bucket_mb must be positive", r.path.string());
    if (const char* f = std::getenv("HYLA_FAULT_DIVERGE_RANK")) diverge_rank_ = std::atoi(f);
  }

  int rank() const override { return comm_.rank(); }
  int world_size() const override { return comm_.world_size(); }
  std::string describe() const override {
    return fmt::format("data parallel, {} ranks over {}{}", comm_.world_size(), comm_.backend_name(),
                       cfg_.zero1 ? ", ZeRO-1" : "");
  }
  torch::Device local_device(torch::Device wanted) const override {
    HYLA_CHECK(wanted.type() == comm_.device().type(), "rank {}: the trainer wants {} but the process group was "
               "made for {}", rank(), wanted.str(), comm_.device().str());
    return comm_.device();
  }

  void prepare(const std::vector<train::NamedParam>& params) override {
    broadcast_from_rank0(params);
    // A later stage may prepare another parameter set: the old buckets' hooks go first
    // (their destructor clears the hooks of the parameters they held).
    zero1_.reset();
    buckets_.reset();
    buckets_ = std::make_unique<GradientBuckets>(comm_, params, cfg_.bucket_mb << 20);
    log::info("data parallel: {} ranks ({}), {} gradient buckets of up to {} MiB", world_size(),
              comm_.backend_name(), buckets_->num_buckets(), cfg_.bucket_mb);
    if (!cfg_.zero1) return;
    zero1_ = std::make_unique<Zero1>(comm_, params);
    auto per = zero1_->state_bytes_per_rank();
    std::string shares;
    for (size_t r = 0; r < per.size(); ++r) shares += fmt::format("{}{} on rank {}", r ? ", " : "", mib(per[r]), r);
    log::info("ZeRO-1: AdamW state {} instead of {} on every rank ({:.0f}% saved on the heaviest rank)",
              shares, mib(zero1_->state_bytes_unsharded()),
              100.0 * (1.0 - double(*std::max_element(per.begin(), per.end())) /
                                 double(std::max<int64_t>(1, zero1_->state_bytes_unsharded()))));
  }

  void begin_gradient_sync() override { buckets_->begin(); }
  void finish_gradient_sync() override { buckets_->finish(); }

  std::vector<bool> owned(const std::vector<train::NamedParam>& params) override {
    if (zero1_) return zero1_->owned();
    return std::vector<bool>(params.size(), true);
  }

  void after_optimizer_step(const std::vector<train::NamedParam>& params) override {
    if (zero1_) zero1_->broadcast_updated();
    buckets_->reattach();
    if (diverge_rank_ == rank() && !params.empty()) {
      // Test hook (HYLA_FAULT_DIVERGE_RANK=r): nudge one weight on rank r, once, so the
      // checksum must catch it.
      torch::NoGradGuard ng;
      params.front().tensor.view({-1}).narrow(0, 0, 1).add_(1e-3);
      diverge_rank_ = -1;
    }
  }

  double mean(double v) override { return sum(v) / world_size(); }
  double sum(double v) override {
    auto t = torch::full({1}, v, torch::TensorOptions().dtype(torch::kFloat64).device(comm_.device()));
    comm_.allreduce_now(t, c10d::ReduceOp::SUM, "all-reduce of a logged scalar");
    return t.item<double>();
  }

  void check_in_sync(const std::vector<train::NamedParam>& params, int64_t step) override;

  std::vector<std::pair<std::string, torch::Tensor>> gather_optimizer_state(const train::AdamW& opt) override {
    if (zero1_) return zero1_->gather_state(opt);
    return rank() == 0 ? opt.state_tensors() : std::vector<std::pair<std::string, torch::Tensor>>{};
  }

  void barrier() override { comm_.barrier("barrier"); }

 private:
  void broadcast_from_rank0(const std::vector<train::NamedParam>& params);

  LaunchEnv env_;
  train::DistConfig cfg_;
  Comm comm_;
  std::unique_ptr<GradientBuckets> buckets_;
  std::unique_ptr<Zero1> zero1_;
  int diverge_rank_ = -1;
};

void C10dDataParallel::broadcast_from_rank0(const std::vector<train::NamedParam>& params) {
  // Every rank seeds the same initialisation, but a loaded or resumed model may not
  // match bit for bit across hosts; rank 0's copy is the truth. One flat broadcast per
  // bucket-sized group keeps the message count low.
  torch::NoGradGuard ng;
  std::vector<torch::Tensor> ts;
  for (auto& p : params) ts.push_back(p.tensor);
  for (auto& group : assign_buckets(ts, cfg_.bucket_mb << 20, cfg_.bucket_mb << 20)) {
    std::vector<torch::Tensor> parts;
    for (size_t i : group) parts.push_back(ts[i].detach().reshape({-1}));
    auto flat = torch::cat(parts);
    comm_.wait(comm_.broadcast(flat, 0, "initial broadcast of parameters"), "initial broadcast of parameters");
    int64_t off = 0;
    for (size_t i : group) {
      ts[i].detach().copy_(flat.narrow(0, off, ts[i].numel()).view(ts[i].sizes()));
      off += ts[i].numel();
    }
  }
}

void C10dDataParallel::check_in_sync(const std::vector<train::NamedParam>& params, int64_t step) {
  torch::NoGradGuard ng;
  std::vector<torch::Tensor> sums;
  for (auto& p : params) sums.push_back(bit_checksum(p.tensor));
  auto lo = torch::stack(sums), hi = lo.clone();
  comm_.allreduce_now(lo, c10d::ReduceOp::MIN, "parameter checksum (min)");
  comm_.allreduce_now(hi, c10d::ReduceOp::MAX, "parameter checksum (max)");
  auto lo_c = lo.cpu(), hi_c = hi.cpu();
  auto* a = lo_c.data_ptr<int64_t>();
  auto* b = hi_c.data_ptr<int64_t>();
  std::vector<std::string> differ;
  for (size_t i = 0; i < params.size(); ++i)
    if (a[i] != b[i]) differ.push_back(params[i].name);
  if (differ.empty()) return;
  fail("ranks diverged at step {}: {} of {} parameters differ between ranks (first: {}). Data-parallel replicas "
       "must stay bit-identical; this points at non-deterministic kernels that differ by rank, a rank that "
       "skipped an update, or memory corruption. Stopping; resume from the last checkpoint.",
       step, differ.size(), params.size(), differ.front());
}

}  // namespace

std::shared_ptr<train::DataParallel> make_c10d_data_parallel(const train::Recipe& recipe) {
  return std::make_shared<C10dDataParallel>(recipe);
}

}  // namespace hyla::dist
