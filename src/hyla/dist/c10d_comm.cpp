#include "hyla/dist/c10d_comm.h"

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#ifdef HYLA_CUDA
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <cstdlib>
#include <sstream>

#include "hyla/util/error.h"
#include "hyla/util/log.h"

namespace hyla::dist {

namespace {

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : fallback;
}

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  long x = std::strtol(v, &end, 10);
  HYLA_CHECK(end && *end == 0, "environment variable {}={} is not an integer", name, v);
  return static_cast<int>(x);
}

// c10::Error carries a C++ backtrace in what(); users need only its first lines.
std::string short_message(const std::exception& e) {
  std::string m;
  if (auto* ce = dynamic_cast<const c10::Error*>(&e)) m = ce->what_without_backtrace();
  else m = e.what();
  std::istringstream in(m);
  std::string line, out;
  for (int i = 0; i < 3 && std::getline(in, line); ++i) out += (i ? " | " : "") + line;
  return out;
}

std::shared_ptr<::gloo::transport::Device> gloo_device() {
  // Like torch.distributed: GLOO_SOCKET_IFNAME picks the interface (needed when the
  // hostname does not resolve to an address the peers can reach, e.g. in a netns).
  std::string ifname = env_or("GLOO_SOCKET_IFNAME", "");
  if (!ifname.empty()) return c10d::ProcessGroupGloo::createDeviceForInterface(ifname.substr(0, ifname.find(',')));
  return c10d::ProcessGroupGloo::createDefaultDevice();
}

}  // namespace

LaunchEnv LaunchEnv::from_environment() {
  LaunchEnv e;
  e.rank = env_int("RANK", 0);
  e.world_size = env_int("WORLD_SIZE", 1);
  e.local_rank = env_int("LOCAL_RANK", 0);
  e.master_addr = env_or("MASTER_ADDR", "127.0.0.1");
  e.master_port = env_int("MASTER_PORT", 29500);
  e.restart_count = env_int("TORCHELASTIC_RESTART_COUNT", 0);
  std::string agent = env_or("TORCHELASTIC_USE_AGENT_STORE", "False");
  e.agent_store = agent == "True" || agent == "true" || agent == "1";
  HYLA_CHECK(e.world_size >= 1 && e.rank >= 0 && e.rank < e.world_size,
             "RANK={} is outside WORLD_SIZE={} (set by torchrun)", e.rank, e.world_size);
  HYLA_CHECK(e.master_port > 0 && e.master_port < 65536, "MASTER_PORT={} is not a TCP port", e.master_port);
  return e;
}

Comm::Comm(const LaunchEnv& env, torch::Device device, std::chrono::milliseconds timeout)
    : env_(env), device_(device), timeout_(timeout) {
  // The store: torchrun's agent hosts it (workers are clients) or, launched by hand,
  // rank 0 does — the same choice torch.distributed makes (rendezvous.py).
  c10d::TCPStoreOptions so;
  so.port = static_cast<uint16_t>(env.master_port);
  so.isServer = !env.agent_store && env.rank == 0;
  so.numWorkers = env.world_size;
  so.timeout = timeout;
  so.multiTenant = true;
  try {
    auto tcp = c10::make_intrusive<c10d::TCPStore>(env.master_addr, so);
    store_ = c10::make_intrusive<c10d::PrefixStore>(fmt::format("hyla/attempt_{}", env.restart_count), tcp);
  } catch (const std::exception& e) {
    fail("rank {}: cannot reach the rendezvous store at {}:{} within {} s: {}", env.rank, env.master_addr,
         env.master_port, timeout.count() / 1000, short_message(e));
  }
  try {
    if (device.is_cuda()) {
#ifdef HYLA_CUDA
      // NVLink SHARP (multicast) is not available on the machines we run on; NCCL would
      // probe and may fail. Respect an explicit setting from the user.
      ::setenv("NCCL_NVLS_ENABLE", "0", /*overwrite=*/0);
      c10::cuda::set_device(device.index());
      auto opts = c10d::ProcessGroupNCCL::Options::create();
      opts->timeout = timeout;
      backend_ = c10::make_intrusive<c10d::ProcessGroupNCCL>(store_, env.rank, env.world_size, opts);
#else
      fail("rank {}: device {} needs NCCL, but this hyla was built without CUDA (HYLA_CUDA=OFF)", env.rank,
           device.str());
#endif
    } else {
      auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
      opts->devices.push_back(gloo_device());
      backend_ = c10::make_intrusive<c10d::ProcessGroupGloo>(store_, env.rank, env.world_size, opts);
    }
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    fail("rank {}: creating the {} process group of {} ranks failed: {}", env.rank,
         device.is_cuda() ? "NCCL" : "Gloo", env.world_size, short_message(e));
  }
}

Comm::~Comm() = default;

std::string Comm::backend_name() const { return backend_->getBackendName(); }

void Comm::fail_collective(std::string_view what, const std::exception& e) const {
  fail("rank {} of {}: {} failed: {}. Another rank has probably died (see torchrun's report) or the "
       "collective timeout ([dist] timeout_s = {} s) passed.",
       env_.rank, env_.world_size, what, short_message(e), timeout_.count() / 1000);
}

Comm::WorkPtr Comm::allreduce(torch::Tensor& t, c10d::ReduceOp op, std::string_view what) {
  std::vector<torch::Tensor> ts{t};
  c10d::AllreduceOptions o;
  o.reduceOp = op;
  try {
    return backend_->allreduce(ts, o);
  } catch (const std::exception& e) {
    fail_collective(what, e);
  }
}

Comm::WorkPtr Comm::broadcast(torch::Tensor& t, int root, std::string_view what) {
  std::vector<torch::Tensor> ts{t};
  c10d::BroadcastOptions o;
  o.rootRank = root;
  try {
    return backend_->broadcast(ts, o);
  } catch (const std::exception& e) {
    fail_collective(what, e);
  }
}

void Comm::wait(const WorkPtr& work, std::string_view what) {
  try {
    work->wait();
  } catch (const std::exception& e) {
    fail_collective(what, e);
  }
}

void Comm::allreduce_now(torch::Tensor& t, c10d::ReduceOp op, std::string_view what) {
  wait(allreduce(t, op, what), what);
}

void Comm::send(torch::Tensor& t, int dst, int tag, std::string_view what) {
  std::vector<torch::Tensor> ts{t};
  try {
    backend_->send(ts, dst, tag)->wait();
  } catch (const std::exception& e) {
    fail_collective(what, e);
  }
}

void Comm::recv(torch::Tensor& t, int src, int tag, std::string_view what) {
  std::vector<torch::Tensor> ts{t};
  try {
    backend_->recv(ts, src, tag)->wait();
  } catch (const std::exception& e) {
    fail_collective(what, e);
  }
}

void Comm::barrier(std::string_view what) {
  // An all-reduce of one number: works the same on Gloo and NCCL (whose barrier has to
  // guess the device).
  auto t = torch::zeros({1}, torch::TensorOptions().dtype(torch::kFloat32).device(device_));
  allreduce_now(t, c10d::ReduceOp::SUM, what);
  if (device_.is_cuda()) t.item<float>();  // NCCL's wait only orders streams; wait on the host too
}

}  // namespace hyla::dist
