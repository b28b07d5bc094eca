#include "hyla/dist/c10d_zero1.h"

#include <algorithm>
#include <map>
#include <numeric>

#include "hyla/util/error.h"

namespace hyla::dist {

std::vector<int> partition_by_numel(const std::vector<int64_t>& numels, int world_size) {
  HYLA_CHECK(world_size >= 1, "ZeRO-1: world size {} must be positive", world_size);
  std::vector<size_t> order(numels.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return numels[a] > numels[b]; });
  std::vector<int64_t> load(world_size, 0);
  std::vector<int> owner(numels.size(), 0);
  for (size_t i : order) {
    int r = int(std::min_element(load.begin(), load.end()) - load.begin());
    owner[i] = r;
    load[r] += numels[i];
  }
  return owner;
}

Zero1::Zero1(Comm& comm, const std::vector<train::NamedParam>& params) : comm_(comm), params_(params) {
  std::vector<int64_t> n;
  for (auto& p : params_) n.push_back(p.tensor.numel());
  owner_ = partition_by_numel(n, comm_.world_size());
}

std::vector<bool> Zero1::owned() const {
  std::vector<bool> out(params_.size());
  for (size_t i = 0; i < params_.size(); ++i) out[i] = owner_[i] == comm_.rank();
  return out;
}

std::vector<int64_t> Zero1::state_bytes_per_rank() const {
  std::vector<int64_t> out(comm_.world_size(), 0);
  for (size_t i = 0; i < params_.size(); ++i)
    out[owner_[i]] += 2 * params_[i].tensor.numel() * params_[i].tensor.element_size();
  return out;
}

int64_t Zero1::state_bytes_unsharded() const {
  auto v = state_bytes_per_rank();
  return std::accumulate(v.begin(), v.end(), int64_t(0));
}

std::vector<torch::ScalarType> Zero1::dtypes() const {
  std::vector<torch::ScalarType> out;
  for (auto& p : params_)
    if (std::find(out.begin(), out.end(), p.tensor.scalar_type()) == out.end()) out.push_back(p.tensor.scalar_type());
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<size_t> Zero1::owned_by(int rank, torch::ScalarType dtype) const {
  std::vector<size_t> out;
  for (size_t i = 0; i < params_.size(); ++i)
    if (owner_[i] == rank && params_[i].tensor.scalar_type() == dtype) out.push_back(i);
  return out;
}

void Zero1::broadcast_updated() {
  torch::NoGradGuard ng;
  // One flat buffer per (owner, dtype): W broadcasts per step instead of one per tensor.
  struct Pending {
    std::vector<size_t> members;
    torch::Tensor flat;
    Comm::WorkPtr work;
    int root;
  };
  std::vector<Pending> pending;
  for (auto dtype : dtypes()) {
    for (int r = 0; r < comm_.world_size(); ++r) {
      Pending p{owned_by(r, dtype), {}, {}, r};
      if (p.members.empty()) continue;
      int64_t n = 0;
      for (size_t i : p.members) n += params_[i].tensor.numel();
      if (r == comm_.rank()) {
        std::vector<torch::Tensor> parts;
        for (size_t i : p.members) parts.push_back(params_[i].tensor.detach().reshape({-1}));
        p.flat = torch::cat(parts);
      } else {
        p.flat = torch::empty({n}, params_[p.members.front()].tensor.options().requires_grad(false));
      }
      p.work = comm_.broadcast(p.flat, r, fmt::format("ZeRO-1 broadcast of rank {}'s parameters", r));
      pending.push_back(std::move(p));
    }
  }
  for (auto& p : pending) {
    comm_.wait(p.work, fmt::format("ZeRO-1 broadcast of rank {}'s parameters", p.root));
    if (p.root == comm_.rank()) continue;
    int64_t off = 0;
    for (size_t i : p.members) {
      auto& t = params_[i].tensor;
      t.detach().copy_(p.flat.narrow(0, off, t.numel()).view(t.sizes()));
      off += t.numel();
    }
  }
}

std::vector<std::pair<std::string, torch::Tensor>> Zero1::gather_state(const train::AdamW& opt) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  if (opt.steps_taken() == 0) return out;  // no moments yet anywhere
  std::map<std::string, torch::Tensor> mine;
  for (auto& [n, t] : opt.state_tensors()) mine[n] = t;
  auto moment = [&](const std::string& key, size_t i) {
    auto it = mine.find(key + "." + params_[i].name);
    return it != mine.end() ? it->second : torch::zeros(params_[i].tensor.sizes(), params_[i].tensor.dtype());
  };
  // Owners send [exp_avg, exp_avg_sq] of each owned parameter, flat, to rank 0.
  std::map<size_t, std::pair<torch::Tensor, torch::Tensor>> got;
  for (auto dtype : dtypes()) {
    for (int r = 0; r < comm_.world_size(); ++r) {
      auto members = owned_by(r, dtype);
      if (members.empty() || (comm_.rank() != r && comm_.rank() != 0)) continue;
      int tag = 1000 + r;
      std::string what = fmt::format("gathering rank {}'s optimizer state for the checkpoint", r);
      if (r == 0) {
        if (comm_.rank() == 0)
          for (size_t i : members) got[i] = {moment("exp_avg", i), moment("exp_avg_sq", i)};
        continue;
      }
      if (comm_.rank() == r) {
        std::vector<torch::Tensor> parts;
        for (size_t i : members) {
          parts.push_back(moment("exp_avg", i).reshape({-1}));
          parts.push_back(moment("exp_avg_sq", i).reshape({-1}));
        }
        auto flat = torch::cat(parts).to(comm_.device());
        comm_.send(flat, 0, tag, what);
      } else {  // rank 0 receives
        int64_t n = 0;
        for (size_t i : members) n += 2 * params_[i].tensor.numel();
        auto flat = torch::empty({n}, torch::TensorOptions().dtype(dtype).device(comm_.device()));
        comm_.recv(flat, r, tag, what);
        flat = flat.to(torch::kCPU);
        int64_t off = 0;
        for (size_t i : members) {
          int64_t k = params_[i].tensor.numel();
          auto m = flat.narrow(0, off, k).view(params_[i].tensor.sizes());
          auto v = flat.narrow(0, off + k, k).view(params_[i].tensor.sizes());
          got[i] = {m, v};
          off += 2 * k;
        }
      }
    }
  }
  if (comm_.rank() != 0) return out;
  for (size_t i = 0; i < params_.size(); ++i) {
    out.emplace_back("exp_avg." + params_[i].name, got.at(i).first);
    out.emplace_back("exp_avg_sq." + params_[i].name, got.at(i).second);
  }
  return out;
}

}  // namespace hyla::dist
