#include "hyla/model/static_decoder.h"

#ifdef HYLA_CUDA
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

#include "hyla/util/error.h"
#include "hyla/util/log.h"

namespace hyla::model {

struct StaticDecoder::Graph {
#ifdef HYLA_CUDA
  at::cuda::CUDAGraph graph;
#endif
};

StaticDecoder::StaticDecoder(CausalLM model, int64_t batch, int64_t max_len, bool use_graph)
    : model_(std::move(model)), cache_(model_->new_cache()), batch_(batch), max_len_(max_len) {
  const auto& c = model_->config();
  auto w = model_->embed_tokens->weight;
  use_graph_ = use_graph && w.is_cuda() && c.rope.type != "dynamic";
  for (int64_t i = 0; i < model_->num_layers(); ++i) {
    if (!c.is_attention_layer(i)) continue;
    auto shape = std::vector<int64_t>{batch, c.num_key_value_heads, max_len, c.head_dim};
    cache_.layers[i].k = torch::zeros(shape, w.options());
    cache_.layers[i].v = torch::zeros(shape, w.options());
  }
  auto iopt = torch::TensorOptions().dtype(torch::kInt64).device(w.device());
  in_ids_ = torch::zeros({batch, 1}, iopt);
  in_pos_ = torch::zeros({1}, iopt);
  graph_ = std::make_unique<Graph>();
}

StaticDecoder::~StaticDecoder() = default;

torch::Tensor StaticDecoder::prefill(const torch::Tensor& ids) {
  HYLA_CHECK(ids.size(0) == batch_, "static decoder built for batch {}, prompt has {}", batch_, ids.size(0));
  int64_t T = ids.size(1);
  HYLA_CHECK(T <= max_len_, "prompt of {} tokens exceeds the decoder's capacity {}", T, max_len_);
  torch::NoGradGuard ng;
  ForwardOptions fo;
  fo.cache = &cache_;
  fo.static_cache = true;
  fo.positions = torch::arange(T, in_pos_.options());
  fo.logits_last_n = 1;
  auto logits = model_->forward(ids, fo);
  pos_ = T;
  return logits.select(1, 0);
}

torch::Tensor StaticDecoder::run_step() {
  ForwardOptions fo;
  fo.cache = &cache_;
  fo.static_cache = true;
  fo.positions = in_pos_;
  return model_->forward(in_ids_, fo).select(1, 0);
}

torch::Tensor StaticDecoder::step(const torch::Tensor& ids) {
  HYLA_CHECK(pos_ < max_len_, "static decoder is full ({} tokens)", max_len_);
  torch::NoGradGuard ng;
  in_ids_.copy_(ids.view({batch_, 1}), /*non_blocking=*/true);
  in_pos_.fill_(pos_);
  ++pos_;
  if (!use_graph_) return run_step();
#ifdef HYLA_CUDA
  if (!graph_ready_) {
    // Warm up on a side stream (allocator, cuBLAS handles), then capture one step.
    // The warm-up and the capture each write this position's K/V; they are rewritten
    // identically by the replay below, so the cache stays right.
    // Warm-up steps advance the linear mixers' states; they are put back before the
    // capture (which only records), so the first replay starts from the prefilled state.
    auto saved = cache_.snapshot_states();
    auto main_stream = c10::cuda::getCurrentCUDAStream();
    auto side = c10::cuda::getStreamFromPool();
    at::cuda::CUDAEvent ready;
    ready.record(main_stream);
    ready.block(side);
    {
      c10::cuda::CUDAStreamGuard guard(side);
      for (int i = 0; i < 2; ++i) run_step();
      cache_.restore_states(saved);
      graph_->graph.capture_begin();
      out_logits_ = run_step();
      graph_->graph.capture_end();
    }
    at::cuda::CUDAEvent captured;
    captured.record(side);
    captured.block(main_stream);
    graph_ready_ = true;
    log::debug("captured a CUDA graph of one decode step (batch {}, capacity {})", batch_, max_len_);
  }
  graph_->graph.replay();
  return out_logits_;
#else
  return run_step();
#endif
}

}  // namespace hyla::model
