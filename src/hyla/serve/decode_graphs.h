// CUDA graphs of the engine's decode step, one per (batch bucket, key-length bucket,
// replacement level), each captured ONCE per engine and replayed by every later step of
// that shape, whichever requests are running (`hyla bench generate`'s StaticDecoder
// re-captures per call). A step of n decoding rows pads to the next bucket (1, 2, 4, 8,
// ... up to --max-running); the padding rows read and write PagedCache's scratch block
// and slot. Keys are padded to a power-of-two length (>= 128, at most the context), so
// the attention reads every row's blocks under the same mask shape.
//
// Warm-up and capture run on the scratch entries only (every row of the static inputs
// points there), so no live sequence's K/V or state is touched; the real inputs are
// copied in before each replay. On CPU (or with --no-cuda-graphs) nothing is captured.
#pragma once
#include <torch/torch.h>

#include <functional>
#include <map>
#include <memory>
#include <tuple>

namespace hyla::serve {

struct GraphInputs {  // the static buffers a captured step reads
  torch::Tensor ids;        // [B] int64
  torch::Tensor positions;  // [B, 1] int64
  torch::Tensor slots;      // [B] int64 state slots
  torch::Tensor write_rows; // [B] int64 K/V pool rows of the new tokens
  torch::Tensor read_rows;  // [B, L] int64 K/V pool rows of positions 0..L-1
};

class DecodeGraphs {
 public:
  DecodeGraphs(bool enabled, int64_t max_batch, int64_t max_len);
  ~DecodeGraphs();
  bool enabled() const { return enabled_; }
  int64_t batch_bucket(int64_t n) const;
  int64_t length_bucket(int64_t len) const;
  // Logits [B, V] of the graph for (B, L, level), capturing it first if it is new:
  // `scratch(in)` fills the buffers with scratch entries, `forward(in)` is the step.
  // Then `fill(in)` writes the real inputs and the graph replays.
  torch::Tensor run(int64_t batch, int64_t len, int64_t level, torch::Device device,
                    const std::function<void(GraphInputs&)>& scratch, const std::function<void(GraphInputs&)>& fill,
                    const std::function<torch::Tensor(GraphInputs&)>& forward);
  int64_t captures() const { return captures_; }
  int64_t replays() const { return replays_; }

 private:
  struct Graph;
  bool enabled_;
  int64_t max_batch_, max_len_, captures_ = 0, replays_ = 0;
  std::map<std::tuple<int64_t, int64_t, int64_t>, std::unique_ptr<Graph>> graphs_;
};

}  // namespace hyla::serve
