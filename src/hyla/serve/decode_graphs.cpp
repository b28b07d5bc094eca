#include "hyla/serve/decode_graphs.h"

#ifdef HYLA_CUDA
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

#include "hyla/util/error.h"
#include "hyla/util/log.h"

namespace hyla::serve {

struct DecodeGraphs::Graph {
  GraphInputs in;
  torch::Tensor logits;
#ifdef HYLA_CUDA
  at::cuda::CUDAGraph graph;
#endif
};

DecodeGraphs::DecodeGraphs(bool enabled, int64_t max_batch, int64_t max_len)
    : max_batch_(max_batch), max_len_(max_len) {
#ifdef HYLA_CUDA
  enabled_ = enabled;
#else
  enabled_ = false;
  (void)enabled;
#endif
}

DecodeGraphs::~DecodeGraphs() = default;

int64_t DecodeGraphs::batch_bucket(int64_t n) const {
  int64_t b = 1;
  while (b < n) b *= 2;
  return std::min(b, max_batch_);
}

int64_t DecodeGraphs::length_bucket(int64_t len) const {
  int64_t l = 128;
  while (l < len) l *= 2;
  return std::min(l, max_len_);
}

torch::Tensor DecodeGraphs::run(int64_t batch, int64_t len, int64_t level, torch::Device device,
                                const std::function<void(GraphInputs&)>& scratch,
                                const std::function<void(GraphInputs&)>& fill,
                                const std::function<torch::Tensor(GraphInputs&)>& forward) {
  HYLA_CHECK(enabled_, "decode graphs: not enabled (CUDA only)");
#ifdef HYLA_CUDA
  auto key = std::make_tuple(batch, len, level);
  auto& g = graphs_[key];
  if (!g) {
    g = std::make_unique<Graph>();
    auto iopt = torch::TensorOptions().dtype(torch::kInt64).device(device);
    g->in = {torch::zeros({batch}, iopt), torch::zeros({batch, 1}, iopt), torch::zeros({batch}, iopt),
             torch::zeros({batch}, iopt), torch::zeros({batch, len}, iopt)};
    scratch(g->in);
    // Warm up on a side stream (allocator, cuBLAS handles, lazily moved constants), then
    // capture one step; both only touch the scratch block and slot.
    auto main_stream = c10::cuda::getCurrentCUDAStream();
    auto side = c10::cuda::getStreamFromPool();
    at::cuda::CUDAEvent ready;
    ready.record(main_stream);
    ready.block(side);
    {
      c10::cuda::CUDAStreamGuard guard(side);
      for (int i = 0; i < 2; ++i) forward(g->in);
      g->graph.capture_begin();
      g->logits = forward(g->in);
      g->graph.capture_end();
    }
    at::cuda::CUDAEvent captured;
    captured.record(side);
    captured.block(main_stream);
    ++captures_;
    log::info("captured a CUDA graph of the decode step (batch {}, keys {}, level {})", batch, len, level);
  }
  fill(g->in);
  g->graph.replay();
  ++replays_;
  return g->logits;
#else
  (void)batch, (void)len, (void)level, (void)device, (void)scratch, (void)fill, (void)forward;
  return {};
#endif
}

}  // namespace hyla::serve
