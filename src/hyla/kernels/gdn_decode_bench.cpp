#include "hyla/kernels/gdn_decode_bench.h"

#include <algorithm>
#include <vector>

#ifdef HYLA_CUDA
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

#include "hyla/kernels/gdn_decode.h"
#include "hyla/util/error.h"

namespace hyla::kernels {

#ifdef HYLA_CUDA
namespace {

GdnDecodeInputs random_step(int64_t B, int64_t H, int64_t HV, int64_t d, torch::TensorOptions o) {
  int64_t Ck = H * d, Cv = HV * d, W = 4;
  GdnDecodeInputs in;
  in.q = torch::randn({B, 1, Ck}, o), in.k = torch::randn({B, 1, Ck}, o), in.v = torch::randn({B, 1, Cv}, o);
  in.a = torch::randn({B, 1, HV}, o), in.b = torch::randn({B, 1, HV}, o), in.gate = torch::randn({B, 1, Cv}, o);
  in.conv_q_w = torch::randn({Ck, 1, W}, o) * 0.5, in.conv_k_w = torch::randn({Ck, 1, W}, o) * 0.5;
  in.conv_v_w = torch::randn({Cv, 1, W}, o) * 0.5;
  in.conv_q = torch::randn({B, Ck, W - 1}, o), in.conv_k = torch::randn({B, Ck, W - 1}, o);
  in.conv_v = torch::randn({B, Cv, W - 1}, o);
  in.A_log = torch::rand({HV}, o).mul(16).clamp_min(0.5).log(), in.dt_bias = torch::randn({HV}, o) - 3;
  in.norm_weight = torch::ones({d}, o);
  in.S = torch::randn({B, HV, d, d}, o.dtype(torch::kFloat32)) * 0.3;
  in.H = H, in.HV = HV, in.dk = d, in.dv = d;
  return in;
}

// Median over 5 replays of a graph of `iters` calls of `step`, in microseconds per call.
template <typename F>
double time_graph(F step, int iters) {
  at::cuda::CUDAGraph graph;
  auto side = c10::cuda::getStreamFromPool();
  {
    c10::cuda::CUDAStreamGuard guard(side);
    step();  // warm-up outside the capture (allocator, first launch)
    side.synchronize();
    graph.capture_begin();
    for (int i = 0; i < iters; ++i) step();
    graph.capture_end();
  }
  std::vector<double> us;
  for (int r = 0; r < 6; ++r) {
    at::cuda::CUDAEvent start(cudaEventDefault), stop(cudaEventDefault);
    auto s = c10::cuda::getCurrentCUDAStream();
    start.record(s);
    graph.replay();
    stop.record(s);
    stop.synchronize();
    if (r > 0) us.push_back(start.elapsed_time(stop) * 1e3 / iters);
  }
  std::sort(us.begin(), us.end());
  return us[us.size() / 2];
}

double copy_gbps() {
  auto a = torch::empty({int64_t(1) << 28}, torch::TensorOptions().dtype(torch::kFloat32).device(torch::kCUDA));
  auto b = torch::empty_like(a);
  a.uniform_();
  b.copy_(a);
  auto s = c10::cuda::getCurrentCUDAStream();
  at::cuda::CUDAEvent start(cudaEventDefault), stop(cudaEventDefault);
  start.record(s);
  for (int i = 0; i < 10; ++i) b.copy_(a);
  stop.record(s);
  stop.synchronize();
  double seconds = start.elapsed_time(stop) * 1e-3 / 10;
  return 2.0 * a.numel() * 4 / seconds / 1e9;
}

}  // namespace
#endif

GdnDecodeBenchResult bench_gdn_decode(int64_t B, int64_t H, int64_t HV, int64_t d, torch::ScalarType dtype,
                                      int iters) {
#ifdef HYLA_CUDA
  HYLA_CHECK(torch::cuda::is_available(), "bench gdn-decode: no CUDA device");
  torch::NoGradGuard ng;
  auto o = torch::TensorOptions().dtype(dtype).device(torch::kCUDA);
  auto in = random_step(B, H, HV, d, o);
  HYLA_CHECK(gdn_decode_kernel_supports(in), "bench gdn-decode: the fused kernel does not take head dim {} / {}", d,
             c10::toString(dtype));
  in.in_place = true;
  in.out = torch::empty({B, 1, HV, d}, o);
  GdnDecodeBenchResult r;
  r.batch = B;
  r.kernel_us = time_graph([&] { gdn_decode_kernel(in); }, iters);
  auto ref = in;
  ref.in_place = false;
  ref.out = torch::Tensor();
  r.reference_us = time_graph(
      [&] {
        auto x = gdn_decode_reference(ref);
        ref.S = x.S, ref.conv_q = x.conv_q, ref.conv_k = x.conv_k, ref.conv_v = x.conv_v;
      },
      iters);
  double elt = double(torch::elementSize(dtype));
  int64_t Ck = H * d, Cv = HV * d;
  // S read and written (float32); projections read, tails read and written, o written.
  r.bytes = 2.0 * B * HV * d * d * 4 + elt * B * (2 * Ck + 2 * Cv + 2 * HV) + elt * 2 * B * (2 * Ck + Cv) * 3 +
            elt * B * Cv;
  r.copy_gbps = copy_gbps();
  r.floor_us = r.bytes / (r.copy_gbps * 1e9) * 1e6;
  return r;
#else
  fail("bench gdn-decode: this build has no CUDA kernels (HYLA_CUDA=OFF)");
#endif
}

}  // namespace hyla::kernels
