#include "hyla/dist/c10d_grad_buckets.h"

#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>

#include "hyla/util/error.h"
#include "hyla/util/log.h"

namespace hyla::dist {

namespace {

struct GradReadyHook final : torch::autograd::PostAccumulateGradHook {
  GradReadyHook(GradientBuckets* owner, size_t index) : owner(owner), index(index) {}
  void operator()(const torch::autograd::Variable&) override { owner->on_grad_ready(index); }
  GradientBuckets* owner;
  size_t index;
};

}  // namespace

std::vector<std::vector<size_t>> assign_buckets(const std::vector<torch::Tensor>& params, int64_t cap_bytes,
                                                int64_t first_cap_bytes) {
  std::vector<std::vector<size_t>> out;
  int64_t bytes = 0, cap = std::min(first_cap_bytes, cap_bytes);
  for (size_t k = params.size(); k-- > 0;) {
    const auto& p = params[k];
    int64_t b = p.numel() * p.element_size();
    bool fits = !out.empty() && !out.back().empty() && bytes + b <= cap &&
                params[out.back().front()].dtype() == p.dtype() && params[out.back().front()].device() == p.device();
    if (!fits) {
      if (!out.empty()) cap = cap_bytes;  // only the first bucket is small
      out.emplace_back();
      bytes = 0;
    }
    out.back().push_back(k);
    bytes += b;
  }
  return out;
}

GradientBuckets::GradientBuckets(Comm& comm, const std::vector<train::NamedParam>& params, int64_t cap_bytes)
    : comm_(comm) {
  for (auto& np : params) {
    for (auto& q : params_)
      HYLA_CHECK(!q.is_same(np.tensor), "data parallel: parameter {} is listed twice (a tied weight?)", np.name);
    params_.push_back(np.tensor);
  }
  views_.resize(params_.size());
  bucket_of_.resize(params_.size());
  seen_.assign(params_.size(), 0);
  auto groups = assign_buckets(params_, cap_bytes, int64_t(1) << 20);
  for (size_t b = 0; b < groups.size(); ++b) {
    Bucket bk;
    bk.members = groups[b];
    int64_t n = 0;
    for (size_t i : bk.members) n += params_[i].numel();
    const auto& first = params_[bk.members.front()];
    bk.flat = torch::zeros({n}, first.options().requires_grad(false));
    int64_t off = 0;
    for (size_t i : bk.members) {
      views_[i] = bk.flat.narrow(0, off, params_[i].numel()).view(params_[i].sizes());
      off += params_[i].numel();
      bucket_of_[i] = b;
    }
    buckets_.push_back(std::move(bk));
  }
  for (size_t i = 0; i < params_.size(); ++i)
    torch::autograd::impl::set_post_acc_grad_hooks(params_[i], std::make_unique<GradReadyHook>(this, i));
  reattach();
}

GradientBuckets::~GradientBuckets() {
  for (auto& p : params_) torch::autograd::impl::set_post_acc_grad_hooks(p, nullptr);
}

std::string GradientBuckets::bucket_label(size_t b) const {
  return fmt::format("all-reduce of gradient bucket {} of {} ({} parameters, {} values)", b, buckets_.size(),
                     buckets_[b].members.size(), buckets_[b].flat.numel());
}

void GradientBuckets::reattach() {
  torch::NoGradGuard ng;
  for (auto& b : buckets_) b.flat.zero_();
  for (size_t i = 0; i < params_.size(); ++i) params_[i].mutable_grad() = views_[i];
}

void GradientBuckets::adopt_grad(size_t i) {
  auto g = params_[i].grad();
  if (g.defined() && g.data_ptr() == views_[i].data_ptr()) return;
  // Someone replaced .grad (or dropped it): carry its value into the bucket.
  torch::NoGradGuard ng;
  if (g.defined()) views_[i].copy_(g);
  else views_[i].zero_();
  params_[i].mutable_grad() = views_[i];
}

void GradientBuckets::begin() {
  std::lock_guard<std::mutex> lock(mu_);
  std::fill(seen_.begin(), seen_.end(), 0);
  for (auto& b : buckets_) {
    b.pending = b.members.size();
    b.ready = false;
    b.work.reset();
  }
  next_launch_ = 0;
  active_ = true;
}

void GradientBuckets::on_grad_ready(size_t i) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!active_ || seen_[i]) return;
  seen_[i] = 1;
  adopt_grad(i);
  auto& b = buckets_[bucket_of_[i]];
  if (--b.pending == 0) {
    b.ready = true;
    launch_ready_in_order();
  }
}

void GradientBuckets::launch_ready_in_order() {
  torch::NoGradGuard ng;
  while (next_launch_ < buckets_.size() && buckets_[next_launch_].ready) {
    auto& b = buckets_[next_launch_];
    // Averaging by pre-scaling: exact for a power-of-two world size.
    if (comm_.world_size() > 1) b.flat.div_(double(comm_.world_size()));
    b.work = comm_.allreduce(b.flat, c10d::ReduceOp::SUM, bucket_label(next_launch_));
    ++next_launch_;
  }
}

void GradientBuckets::finish() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!active_) {  // finish without begin: reduce everything accumulated so far
      std::fill(seen_.begin(), seen_.end(), 0);
      for (auto& b : buckets_) b.ready = false, b.work.reset();
      next_launch_ = 0;
    }
    size_t unseen = 0;
    for (size_t i = 0; i < params_.size(); ++i)
      if (!seen_[i]) adopt_grad(i), ++unseen;
    if (active_ && unseen > 0 && !warned_unused_) {
      log::warn("data parallel: {} of {} parameters got no gradient in the last backward pass; their buckets "
                "are reduced only after it (no overlap)", unseen, params_.size());
      warned_unused_ = true;
    }
    active_ = false;
    for (auto& b : buckets_) b.ready = true;
    launch_ready_in_order();
  }
  for (size_t b = 0; b < buckets_.size(); ++b) {
    comm_.wait(buckets_[b].work, bucket_label(b));
    buckets_[b].work.reset();
  }
}

}  // namespace hyla::dist
