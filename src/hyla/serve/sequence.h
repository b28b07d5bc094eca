// One request inside the engine: its tokens so far, how many the model has consumed,
// where its decode memory lives (KV block ids and a state slot in PagedCache), which
// model configuration it runs (adaptive serving), and its prefix-cache bookkeeping.
#pragma once
#include <chrono>
#include <memory>

#include "hyla/model/cache.h"
#include "hyla/serve/prefix_cache.h"
#include "hyla/serve/request.h"
#include "hyla/serve/sampler.h"

namespace hyla::serve {

struct Sequence {
  uint64_t id = 0;
  Request request;
  std::vector<int64_t> tokens;  // prompt, then generated tokens
  int64_t prompt_len = 0;
  int64_t computed = 0;         // tokens the model has consumed (in the cache)
  int64_t generated = 0;
  int64_t slot = -1;            // state slot in the block pool; -1 while waiting
  int64_t reserved_tokens = 0;  // what the block reservation covers
  std::vector<int64_t> blocks;  // block table: token t lives in blocks[t / block_size]
  int64_t level = 0;            // replacement level (adaptive): layers swapped for linear ones
  std::unique_ptr<RequestSampler> sampler;
  bool finished = false;  // reported; leaves the running set at the next retire
  PrefixHit restored;                      // where the prompt was restored from
  PrefixHit prompt_entry;                  // the entry recorded for the whole prompt
  std::map<int64_t, LayerStates> snapshots;  // linear states taken during prefill
  int64_t snapshot_at = 0;                   // an extra snapshot point (PrefixHit::shared)
  std::chrono::steady_clock::time_point arrived;

  bool prefilling() const { return computed < prompt_len; }
  int64_t pending() const { return static_cast<int64_t>(tokens.size()) - computed; }
};

}  // namespace hyla::serve
