// The serving engine: a scheduler (who runs this step), a block pool (KV blocks and
// state slots under a memory budget), a prefix cache (snapshots of shared prompt
// prefixes) and a runner (the model forward), stepped in a loop. Requests arrive from
// any thread; every step admits what fits, runs one chunk or token per sequence,
// samples, reports outputs through each request's callback, and retires what finished.
#pragma once
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "hyla/model/decoder.h"
#include "hyla/serve/block_pool.h"
#include "hyla/serve/paged_cache.h"
#include "hyla/serve/prefix_cache.h"
#include "hyla/serve/runner.h"
#include "hyla/serve/scheduler.h"
#include "hyla/util/error.h"

#include <deque>

namespace hyla::serve {

// DSLA-Serve's online policy (dsla.md), checked before every step once replacement
// levels are added: load is high when `up_waiting` requests wait, the longest waiting
// prompt has `up_prompt` tokens, or `up_kv` of the KV blocks are in use; then new
// requests get one more layer replaced (up to `max_ratio` of the layers). Load is low
// when all three are under their `down_*` marks; then one layer goes back. At most one
// switch per `cooldown_seconds`. Running requests keep the level they started with.
struct AdaptivePolicy {
  int64_t up_waiting = 50, down_waiting = 25;
  int64_t up_prompt = 1024, down_prompt = 819;
  double up_kv = 0.9, down_kv = 0.5;
  double cooldown_seconds = 60, max_ratio = 0.75;
};

struct EngineOptions {
  int64_t max_running = 16;                  // state slots: sequences decoding at once
  int64_t block_size = 16;                   // tokens per KV block
  int64_t kv_cache_bytes = int64_t(1) << 30; // attention K/V budget
  int64_t step_tokens = 256;                 // tokens fed per step (decodes + prefill chunks)
  int64_t prefill_chunk = 64;                // prefill chunk = linear-state snapshot interval
  bool prefix_cache = true;
  int64_t prefix_cache_bytes = int64_t(256) << 20;
  int64_t max_waiting = 1024;                // queued requests beyond this are refused
  int64_t max_context = 0;                   // 0: the model's max_position_embeddings
  bool cuda_graphs = true;                   // capture decode steps (CUDA only)
  AdaptivePolicy adaptive;
};

// A request refused for the server's state, not its content (HTTP 429 / 503); a bad
// request is a plain hyla::Error (HTTP 400).
class Refused : public Error {
 public:
  enum class Why { queue_full, shutting_down };
  Refused(Why w, std::string what) : Error(std::move(what)), why(w) {}
  Why why;
};

struct EngineStats {
  int64_t waiting = 0, running = 0;
  int64_t kv_blocks_used = 0, kv_blocks_total = 0, slots_used = 0, slots_total = 0;
  int64_t prompt_tokens = 0, cached_tokens = 0, generated_tokens = 0;
  int64_t requests_finished = 0, prefix_hits = 0, prefix_lookups = 0;
  int64_t prefix_cache_bytes = 0, prefix_cache_entries = 0, prefix_evictions = 0, steps = 0;
  int64_t attention_layers = 0, layers = 0;  // of the configuration new requests get
  int64_t state_bytes = 0;                    // linear-state slot pools
  int64_t decode_rows = 0, decode_steps = 0;  // decoding rows batched, steps that had any
  int64_t graph_captures = 0, graph_replays = 0;
  int64_t level = 0, levels = 1, switches_up = 0, switches_down = 0;  // adaptive replacement
  double tokens_per_second = 0;  // generated, over the last ~10 s
};

class Engine {
 public:
  Engine(model::CausalLM model, EngineOptions opt);
  ~Engine();
  // Thread-safe. Checks the request (errors are hyla::Error naming what is wrong) and
  // queues it; its outputs arrive through request.on_output on the engine's thread.
  uint64_t submit(Request r);
  // Thread-safe: the request finishes with FinishReason::cancelled at the next step.
  void cancel(uint64_t id);

  // One step (engine thread only, or without start()). Returns false when idle.
  bool step();
  void run_until_idle();
  // A background thread stepping until stop(); stop(drain = true) refuses new requests
  // and returns once the queued and running ones have finished.
  void start();
  void stop(bool drain);
  // Refuses new requests from now on (the first half of a drain).
  void close();
  bool closed() const {
    std::lock_guard lk(mu_);
    return !accepting_;
  }
  // Waits until nothing is queued or running; false on timeout.
  bool wait_idle(double timeout_seconds) const;

  // Adaptive replacement: the next level's mixer for every layer, and the layer it
  // replaces (levels are added in order: 1, 2, ...). Before start().
  void add_level(std::vector<model::Mixer> mixers, int64_t replaced_layer);
  EngineStats stats() const;
  const model::ModelConfig& config() const { return config_; }
  int64_t max_context() const { return opt_.max_context; }

 private:
  void take_inbox();
  void adapt();
  void admit();
  void handle(const StepResult& r);
  void emit_token(Sequence& s, const torch::Tensor& last_logits);
  void finish(Sequence& s, FinishReason why, RequestOutput out = {});
  void update_stats();
  void fail_running(const std::string& why);

  // The prefix cache of a replacement level (entries hold that configuration's K/V
  // and states, useless to another).
  PrefixCache& prefix(int64_t level) { return prefixes_[level]; }
  bool has_linear(int64_t level) const;

  model::ModelConfig config_;
  EngineOptions opt_;
  BlockPool pool_;
  PagedCache paged_;
  std::vector<PrefixCache> prefixes_;
  Scheduler scheduler_;
  Runner runner_;
  int64_t level_ = 0;  // the replacement level new requests get
  std::vector<int64_t> replaced_;  // replaced_[k-1]: the layer level k replaces
  std::chrono::steady_clock::time_point last_switch_{};
  int64_t switches_up_ = 0, switches_down_ = 0;

  mutable std::mutex mu_;  // guards the inbox, cancels, stats, flags below
  std::condition_variable wake_;
  std::vector<std::unique_ptr<Sequence>> inbox_;
  std::vector<uint64_t> cancels_;
  EngineStats stats_;
  uint64_t next_id_ = 1;
  bool accepting_ = true, stop_ = false, cancel_all_ = false;
  std::thread thread_;
  int64_t totals_prompt_ = 0, totals_cached_ = 0, totals_generated_ = 0, totals_finished_ = 0;
  int64_t hits_ = 0, lookups_ = 0, steps_ = 0, decode_rows_ = 0, decode_steps_ = 0;
  std::deque<std::pair<std::chrono::steady_clock::time_point, int64_t>> rate_window_;  // (time, generated)
};

}  // namespace hyla::serve
