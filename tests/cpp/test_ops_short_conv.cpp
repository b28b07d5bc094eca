// The causal depthwise conv against torch::conv1d (PyTorch's own Conv1d with left
// padding W−1 and groups = channels, as fla's ShortConvolution is), with cached tails.
#include <gtest/gtest.h>

#include "hyla/ops/short_conv.h"
#include "hyla/util/error.h"
#include "mixer_testing.h"

namespace {

using hyla::testing::rel_err;
using hyla::ops::short_conv;

// PyTorch's Conv1d on [B, C, T] with padding W−1, keeping the first T outputs.
torch::Tensor torch_conv(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b) {
  int64_t T = x.size(1), C = x.size(2), W = w.size(-1);
  auto y = torch::conv1d(x.transpose(1, 2), w.view({C, 1, W}), b, 1, W - 1, 1, C);
  return y.narrow(2, 0, T).transpose(1, 2);
}

TEST(ShortConv, MatchesTorchConv1d) {
  torch::manual_seed(21);
  auto x = torch::randn({2, 13, 6}, torch::kFloat64);
  auto w = torch::randn({6, 1, 4}, torch::kFloat64), b = torch::randn({6}, torch::kFloat64);
  auto r = short_conv(x, w, b, {}, {}, false);
  EXPECT_LE(rel_err(r.y, torch_conv(x, w, b)), 1e-14);
  auto rs = short_conv(x, w, {}, {}, {}, true);
  EXPECT_LE(rel_err(rs.y, torch::silu(torch_conv(x, w, torch::Tensor()))), 1e-14);
  // The tail is the last W−1 inputs, channel-major.
  EXPECT_TRUE(torch::equal(r.tail, x.narrow(1, 10, 3).transpose(1, 2)));
}

TEST(ShortConv, TailContinuesTheSequence) {
  torch::manual_seed(22);
  auto x = torch::randn({2, 9, 5}, torch::kFloat64);
  auto w = torch::randn({5, 4}, torch::kFloat64);
  auto full = short_conv(x, w, {}, {}, {}, true);
  // Prefill 2 tokens (shorter than the window), then one token at a time.
  auto r = short_conv(x.narrow(1, 0, 2), w, {}, {}, {}, true);
  auto tail = r.tail;
  EXPECT_LE(rel_err(r.y, full.y.narrow(1, 0, 2)), 1e-14);
  for (int64_t t = 2; t < 9; ++t) {
    auto s = short_conv(x.narrow(1, t, 1), w, {}, tail, {}, true);
    EXPECT_LE(rel_err(s.y, full.y.narrow(1, t, 1)), 1e-14) << "token " << t;
    tail = s.tail;
  }
  EXPECT_TRUE(torch::allclose(tail, full.tail));
}

TEST(ShortConv, PackedSequencesStartFromTheirOwnTail) {
  torch::manual_seed(23);
  auto x = torch::randn({1, 12, 3}, torch::kFloat64);
  auto w = torch::randn({3, 4}, torch::kFloat64);
  auto tails = torch::randn({3, 3, 3}, torch::kFloat64);
  auto cu = torch::tensor({0, 5, 6, 12}, torch::kInt64);
  auto r = short_conv(x, w, {}, tails, cu, false);
  std::vector<int64_t> b{0, 5, 6, 12};
  for (int n = 0; n < 3; ++n) {
    auto seg = x.narrow(1, b[n], b[n + 1] - b[n]);
    // Oracle: conv1d over [tail, segment] with no padding.
    auto xp = torch::cat({tails.narrow(0, n, 1).transpose(1, 2), seg}, 1);
    auto ref = torch::nn::functional::conv1d(xp.transpose(1, 2), w.view({3, 1, 4}), torch::nn::functional::Conv1dFuncOptions().groups(3)).transpose(1, 2);
    EXPECT_LE(rel_err(r.y.narrow(1, b[n], b[n + 1] - b[n]), ref), 1e-14) << "sequence " << n;
    EXPECT_TRUE(torch::equal(r.tail.narrow(0, n, 1), xp.narrow(1, xp.size(1) - 3, 3).transpose(1, 2)));
  }
}

TEST(ShortConv, BadShapesAreErrors) {
  auto x = torch::randn({1, 4, 3});
  EXPECT_THROW(short_conv(x, torch::randn({4, 4}), {}, {}, {}, true), hyla::Error);
  EXPECT_THROW(short_conv(x, torch::randn({3, 4}), {}, torch::zeros({1, 3, 2}), {}, true), hyla::Error);
  EXPECT_THROW(short_conv(x.squeeze(0), torch::randn({3, 4}), {}, {}, {}, true), hyla::Error);
}

}  // namespace
