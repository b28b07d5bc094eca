// Token batches for training: deterministic, resumable, split across data-parallel
// ranks, optionally mixed with synthetic recall samples.
//
// A split's tokens are cut into fixed windows of seq_len + 1 tokens (input and the
// next-token target), per shard, without crossing shard ends: window w of a shard
// starts at token w·seq_len. Each epoch visits the windows in a permutation drawn from
// (seed, epoch). A step consumes batch_size × world_size slots of that order; rank r
// takes slots [index + r·B, index + (r+1)·B), so ranks read disjoint windows and
// together cover the epoch (the tail that does not fill a whole step is dropped).
// With synthetic_share p > 0, each slot independently (from seed, epoch, slot) holds
// a synthetic sample instead of its window with probability p.
#pragma once
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <functional>
#include <memory>

#include "hyla/data/synthetic_sample.h"
#include "hyla/data/token_shards.h"

namespace hyla::data {

// Where the stream stands: the next step starts at slot `index` of epoch `epoch`'s order.
struct DataPosition {
  int64_t epoch = 0;
  int64_t index = 0;
  nlohmann::json to_json() const { return {{"epoch", epoch}, {"index", index}}; }
  static DataPosition from_json(const nlohmann::json& j);
  bool operator==(const DataPosition&) const = default;
};

struct SamplerOptions {
  int64_t seq_len = 512;
  int64_t batch_size = 8;  // per rank
  uint64_t seed = 0;
  int64_t rank = 0, world_size = 1;
  double synthetic_share = 0;  // in [0, 1)
  int32_t pad_id = 0;          // fills a synthetic sample shorter than seq_len (unscored)
};

// Makes one synthetic sample from its seed; its input must fit seq_len.
using SyntheticSource = std::function<SyntheticSample(uint64_t seed)>;

struct TokenBatch {
  torch::Tensor input;      // [B, T] int64
  torch::Tensor target;     // [B, T] int64
  torch::Tensor loss_mask;  // [B, T] float32, 1 where scored
  int64_t synthetic = 0;    // how many rows are synthetic samples
  DataPosition position;    // position this batch was read at
};

class BatchSampler {
 public:
  BatchSampler(std::shared_ptr<const TokenDataset> data, SamplerOptions opt,
               SyntheticSource synthetic = {});

  TokenBatch next();
  const DataPosition& position() const { return pos_; }
  void set_position(const DataPosition& p);

  int64_t num_windows() const { return num_windows_; }
  int64_t steps_per_epoch() const;
  // Global window ids of this rank's next batch (-1 for a synthetic slot), without
  // advancing. For tests and diagnostics.
  std::vector<int64_t> peek_windows() const;

 private:
  const std::vector<int64_t>& order(int64_t epoch) const;
  bool slot_is_synthetic(int64_t epoch, int64_t slot) const;
  void read_window(int64_t window, int64_t* input, int64_t* target) const;

  std::shared_ptr<const TokenDataset> data_;
  SamplerOptions opt_;
  SyntheticSource synthetic_;
  std::vector<int64_t> window_starts_;  // cumulative windows per shard
  int64_t num_windows_ = 0;
  DataPosition pos_;
  mutable int64_t order_epoch_ = -1;
  mutable std::vector<int64_t> order_;
};

}  // namespace hyla::data
