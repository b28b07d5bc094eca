// This process's link to its data-parallel peers: rendezvous from torchrun's
// environment, a c10d process group (Gloo on CPU, NCCL on GPU), and collectives whose
// failures (a peer died, the timeout passed) come back as hyla::Error in words a user
// can act on, instead of a hang or a C++ backtrace.
#pragma once
#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>
#include <torch/torch.h>

#include <chrono>
#include <string>
#include <string_view>

namespace hyla::dist {

// What torchrun tells each worker (torch/distributed/elastic: local_elastic_agent).
struct LaunchEnv {
  int rank = 0, world_size = 1, local_rank = 0;
  std::string master_addr;
  int master_port = 29500;
  int restart_count = 0;     // TORCHELASTIC_RESTART_COUNT
  bool agent_store = false;  // TORCHELASTIC_USE_AGENT_STORE: the agent hosts the TCPStore
  static LaunchEnv from_environment();
};

class Comm {
 public:
  // Rendezvous and process group. `device` is this rank's device: CUDA -> NCCL (needs a
  // HYLA_CUDA build), CPU -> Gloo. Every collective fails after `timeout`.
  Comm(const LaunchEnv& env, torch::Device device, std::chrono::milliseconds timeout);
  ~Comm();

  int rank() const { return env_.rank; }
  int world_size() const { return env_.world_size; }
  torch::Device device() const { return device_; }
  std::string backend_name() const;
  std::chrono::milliseconds timeout() const { return timeout_; }

  // Asynchronous collectives: call wait() on the result. `what` names the operation in
  // errors ("all-reduce of gradient bucket 3").
  using WorkPtr = c10::intrusive_ptr<c10d::Work>;
  WorkPtr allreduce(torch::Tensor& t, c10d::ReduceOp op, std::string_view what);
  WorkPtr broadcast(torch::Tensor& t, int root, std::string_view what);
  void wait(const WorkPtr& work, std::string_view what);
  // Blocking helpers.
  void allreduce_now(torch::Tensor& t, c10d::ReduceOp op, std::string_view what);
  void send(torch::Tensor& t, int dst, int tag, std::string_view what);
  void recv(torch::Tensor& t, int src, int tag, std::string_view what);
  void barrier(std::string_view what);

 private:
  [[noreturn]] void fail_collective(std::string_view what, const std::exception& e) const;
  LaunchEnv env_;
  torch::Device device_;
  std::chrono::milliseconds timeout_;
  c10::intrusive_ptr<c10d::Store> store_;
  c10::intrusive_ptr<c10d::Backend> backend_;
};

}  // namespace hyla::dist
