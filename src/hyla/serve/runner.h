// One engine step on the model: ONE forward over every scheduled sequence, whatever
// their positions. The step's tokens are packed into rows [total, d]; norms, MLPs, the
// head and every projection run once over all of them. Only the token mixers need
// per-sequence memory, and they run per group:
//   - the decoding rows (one token each, past position 0) form one batch [n, 1, d]:
//     attention reads each row's K/V through its block table (model::PagedKV, rows at
//     different lengths under one mask), linear mixers step the rows' states gathered
//     from their slots and written back;
//   - each prefill chunk [1, T, d] runs as its own group (chunked prefill, interleaved
//     with the decoding rows in the same forward).
// Under adaptive replacement (`add_level`) a sequence's level picks each layer's mixer,
// and the decoding rows split by mixer at every layer.
#pragma once
#include <functional>
#include <vector>

#include "hyla/model/decoder.h"
#include "hyla/serve/decode_graphs.h"
#include "hyla/serve/paged_cache.h"
#include "hyla/serve/scheduler.h"

namespace hyla::serve {

struct StepResult {
  Sequence* seq;
  int64_t start, tokens;  // positions fed
  torch::Tensor logits;   // [n, V]: the last position, or all fed positions for prompt logprobs
};

// The inputs of one mixer call: rows of the packed step that share a mixer.
struct MixerGroup {
  torch::Tensor index;      // [n] rows of the packed step (undefined: rows offset..offset+n*T)
  int64_t offset = 0, n = 0, T = 0;
  torch::Tensor slots;      // [n] state slots
  bool fresh = false;       // a prompt's first chunk: linear mixers start from zero state
  model::PagedKV paged;
  model::MixerContext ctx;  // positions [n, T]; the rotary cache is shared across layers
};

class Runner {
 public:
  // `cuda_graphs`: capture decode steps (CUDA only) for up to `max_batch` rows whose
  // keys fit `max_len` positions.
  Runner(model::CausalLM model, PagedCache& cache, bool cuda_graphs, int64_t max_batch, int64_t max_len);
  std::vector<StepResult> run(const std::vector<Work>& work);
  model::CausalLM& model() { return model_; }
  // Adaptive serving: level k's mixer for every layer (level 0 is the model's own).
  void add_level(std::vector<model::Mixer> mixers);
  int64_t num_levels() const { return static_cast<int64_t>(levels_.size()); }
  const std::vector<bool>& linear_layers(int64_t level) const { return linear_[level]; }
  std::string linear_kind(int64_t level, int64_t layer) const { return levels_[level][layer]->kind(); }
  const DecodeGraphs& graphs() const { return graphs_; }

 private:
  // The mixer of `layer` on `g`'s rows of the normed hidden state hn [total, d].
  torch::Tensor mix(int64_t layer, model::Mixer mixer, const torch::Tensor& hn, MixerGroup& g);
  // The group of `members` (indices into `rows`, packed at `offsets`): indices, slots,
  // positions and block-table rows on `dev`.
  void fill_group(MixerGroup& g, const std::vector<const Work*>& rows, const std::vector<int64_t>& offsets,
                  const std::vector<size_t>& members, torch::Device dev);
  // Layers over the packed hidden state h [total, d]; `groups(layer)` gives the mixer calls.
  using Groups = std::function<std::vector<std::pair<model::Mixer, MixerGroup*>>(int64_t layer)>;
  torch::Tensor layers(torch::Tensor h, const Groups& groups);
  // A step of decoding rows only, all at `level`: the whole batch is one group at every
  // layer, the shape a CUDA graph captures.
  torch::Tensor decode_forward(const torch::Tensor& ids, MixerGroup& g, int64_t level);
  std::vector<StepResult> run_decode_graph(const std::vector<const Work*>& rows, int64_t level);

  model::CausalLM model_;
  PagedCache& cache_;
  std::vector<std::vector<model::Mixer>> levels_;
  std::vector<std::vector<bool>> linear_;
  DecodeGraphs graphs_;
};

}  // namespace hyla::serve
