// Gradient buckets and ZeRO-1 partitioning. Two ranks run as two threads of this
// process over a real Gloo group on loopback; their averaged gradients are checked
// against float64 autograd on the whole batch (the oracle).
#ifdef HYLA_DIST
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "hyla/dist/c10d_comm.h"
#include "hyla/dist/c10d_grad_buckets.h"
#include "hyla/dist/c10d_zero1.h"
#include "hyla/util/error.h"

namespace hyla::dist {
namespace {

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

// A tiny MLP whose parameters have different sizes, plus one parameter the forward
// never uses.
struct Net {
  torch::Tensor w1, b1, w2, unused;
  explicit Net(torch::Dtype dt) {
    torch::manual_seed(7);  // drawn in float64, then rounded: same weights in both precisions
    auto draw = [&](std::vector<int64_t> shape) {
      return torch::randn(shape, torch::kFloat64).to(dt).requires_grad_();
    };
    w1 = draw({16, 8});
    b1 = draw({16});
    w2 = draw({3, 16});
    unused = draw({5});
  }
  std::vector<train::NamedParam> params() const {
    // Registration order: backward finishes w2 first, so w2 lands in bucket 0; the
    // unused parameter, listed first, in the last bucket.
    return {{"unused", unused, false}, {"w1", w1}, {"b1", b1, false}, {"w2", w2}};
  }
  torch::Tensor loss(const torch::Tensor& x, const torch::Tensor& y) const {
    auto h = torch::tanh(torch::nn::functional::linear(x, w1, b1));
    return (torch::nn::functional::linear(h, w2) - y).pow(2).sum(-1).mean();
  }
};

TEST(DistBuckets, AssignmentIsReverseOrderAndRespectsCap) {
  std::vector<torch::Tensor> ps = {torch::zeros({100}), torch::zeros({10}), torch::zeros({10}),
                                   torch::zeros({50}, torch::kFloat64), torch::zeros({30})};
  auto b = assign_buckets(ps, 25 * 4, 1 << 20);  // cap: 25 float32 values
  // Reverse order; the float64 tensor is alone (dtype change); 10 + 10 fit one bucket.
  std::vector<std::vector<size_t>> want = {{4}, {3}, {2, 1}, {0}};
  EXPECT_EQ(b, want);
  std::vector<torch::Tensor> same = {torch::zeros({30}), torch::zeros({30}), torch::zeros({30})};
  EXPECT_EQ(assign_buckets(same, 1 << 20, 1 << 20), (std::vector<std::vector<size_t>>{{2, 1, 0}}));
  // Only the first bucket is held to the small cap (40 values).
  EXPECT_EQ(assign_buckets(same, 1 << 20, 40 * 4), (std::vector<std::vector<size_t>>{{2}, {1, 0}}));
}

TEST(DistBuckets, TwoRanksAverageLikeFloat64WholeBatch) {
  const int W = 2, port = free_port();
  torch::manual_seed(3);
  auto x = torch::randn({8, 8}, torch::kFloat64), y = torch::randn({8, 3}, torch::kFloat64);
  // Oracle: float64 gradients of the mean loss over all 8 rows.
  Net ref(torch::kFloat64);
  ref.loss(x, y).backward();

  // Built here, not in the threads: the global generator is shared.
  std::vector<Net> nets = {Net(torch::kFloat32), Net(torch::kFloat32)};
  std::vector<std::vector<torch::Tensor>> grads(W);
  std::vector<std::string> errors(W);
  auto worker = [&](int rank) {
    try {
      LaunchEnv env;
      env.rank = rank, env.world_size = W, env.master_addr = "127.0.0.1", env.master_port = port;
      Comm comm(env, torch::kCPU, std::chrono::seconds(30));
      Net& net = nets[rank];
      auto params = net.params();
      GradientBuckets buckets(comm, params, 16 * 4);  // small cap: several buckets
      EXPECT_GE(buckets.num_buckets(), 3u);
      // Rank r's rows: [4r, 4r + 4), as two micro-batches of 2 rows; the first
      // accumulates locally, the second's backward overlaps the all-reduce.
      for (int micro = 0; micro < 2; ++micro) {
        auto rows = torch::arange(4 * rank + 2 * micro, 4 * rank + 2 * micro + 2);
        if (micro == 1) buckets.begin();
        (net.loss(x.index({rows}).to(torch::kFloat32), y.index({rows}).to(torch::kFloat32)) / 2.0).backward();
      }
      // Every bucket but the one holding the unused parameter went out during backward.
      EXPECT_EQ(buckets.launched(), buckets.num_buckets() - 1);
      buckets.finish();
      for (auto& p : params) grads[rank].push_back(p.tensor.grad().clone());
      // The next step starts from zeroed views.
      buckets.reattach();
      EXPECT_EQ(net.w1.grad().abs().sum().item<double>(), 0.0);
    } catch (const std::exception& e) {
      errors[rank] = e.what();
    }
  };
  std::thread t0(worker, 0), t1(worker, 1);
  t0.join();
  t1.join();
  ASSERT_EQ(errors[0], "");
  ASSERT_EQ(errors[1], "");
  auto want = std::vector<torch::Tensor>{torch::zeros({5}, torch::kFloat64), ref.w1.grad(), ref.b1.grad(),
                                         ref.w2.grad()};
  for (size_t i = 0; i < want.size(); ++i) {
    // Both ranks hold bit-identical averages.
    EXPECT_TRUE(torch::equal(grads[0][i], grads[1][i])) << "param " << i;
    auto err = (grads[0][i].to(torch::kFloat64) - want[i]).abs().max().item<double>();
    EXPECT_LT(err, 1e-5 * (1 + want[i].abs().max().item<double>())) << "param " << i;
  }
}

TEST(DistComm, MissingPeerFailsWithinTheTimeoutWithAClearError) {
  const int port = free_port();
  std::string error;
  double seconds = 0;
  std::atomic<bool> done{false};
  auto worker = [&](int rank) {
    LaunchEnv env;
    env.rank = rank, env.world_size = 2, env.master_addr = "127.0.0.1", env.master_port = port;
    Comm comm(env, torch::kCPU, std::chrono::seconds(2));
    if (rank == 1) {  // alive but never joins the collective (a hung peer)
      while (!done) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      return;
    }
    auto t = torch::ones({4});
    auto t0 = std::chrono::steady_clock::now();
    try {
      comm.allreduce_now(t, c10d::ReduceOp::SUM, "all-reduce of a test value");
    } catch (const Error& e) {
      error = e.what();
    }
    seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    done = true;
  };
  std::thread t0(worker, 0), t1(worker, 1);
  t0.join();
  t1.join();
  EXPECT_NE(error.find("rank 0 of 2: all-reduce of a test value failed"), std::string::npos) << error;
  EXPECT_NE(error.find("timeout_s = 2 s"), std::string::npos) << error;
  EXPECT_LT(seconds, 10.0);
}

TEST(DistZero1, GreedyPartitionCoversEveryParameterAndBalances) {
  std::vector<int64_t> n = {1000, 10, 400, 400, 300, 5, 7, 250};
  for (int W : {1, 2, 3, 4}) {
    auto owner = partition_by_numel(n, W);
    ASSERT_EQ(owner.size(), n.size());
    std::vector<int64_t> load(W, 0);
    for (size_t i = 0; i < n.size(); ++i) {
      ASSERT_GE(owner[i], 0);
      ASSERT_LT(owner[i], W);
      load[owner[i]] += n[i];
    }
    int64_t total = 0, biggest = 0;
    for (auto v : n) total += v, biggest = std::max(biggest, v);
    // Greedy (longest first) bound: max load <= mean + largest item.
    EXPECT_LE(*std::max_element(load.begin(), load.end()), total / W + biggest) << "W=" << W;
  }
  EXPECT_EQ(partition_by_numel({5, 3, 2}, 2), (std::vector<int>{0, 1, 1}));
}

}  // namespace
}  // namespace hyla::dist
#endif  // HYLA_DIST
