// Who runs this step. Requests wait in arrival order and join the running set between
// steps when a state slot and their KV blocks are free (continuous batching); finished
// or cancelled ones leave between steps. Each step spends a token budget: every
// decoding sequence feeds its one token first, then prefilling sequences feed chunks
// of their prompts with what is left, so a long prompt is prefilled over several steps
// interleaved with the others' decoding instead of stalling them.
#pragma once
#include <deque>
#include <memory>
#include <vector>

#include "hyla/serve/block_pool.h"
#include "hyla/serve/sequence.h"

namespace hyla::serve {

struct Work {
  Sequence* seq;
  int64_t tokens;  // to feed this step, starting at seq->computed
};

class Scheduler {
 public:
  // `chunk`: prefill chunks end at multiples of it (where linear states are snapshot).
  Scheduler(BlockPool& pool, int64_t step_tokens, int64_t chunk);
  void enqueue(std::unique_ptr<Sequence> s) { waiting_.push_back(std::move(s)); }
  // Moves waiting sequences that fit into the running set (in order; the head blocks
  // the rest so a large request is not starved). Returns the newly admitted ones.
  std::vector<Sequence*> admit();
  std::vector<Work> plan() const;
  // Removes finished / cancelled sequences (per `done`), releasing their memory.
  template <typename Done>
  std::vector<std::unique_ptr<Sequence>> retire(Done done);
  // Drops a waiting sequence (cancelled before it ran); returns it or null.
  std::unique_ptr<Sequence> remove_waiting(uint64_t id);

  const std::deque<std::unique_ptr<Sequence>>& waiting() const { return waiting_; }
  const std::vector<std::unique_ptr<Sequence>>& running() const { return running_; }
  std::vector<std::unique_ptr<Sequence>>& running() { return running_; }

 private:
  BlockPool& pool_;
  int64_t step_tokens_, chunk_;
  std::deque<std::unique_ptr<Sequence>> waiting_;
  std::vector<std::unique_ptr<Sequence>> running_;
};

template <typename Done>
std::vector<std::unique_ptr<Sequence>> Scheduler::retire(Done done) {
  std::vector<std::unique_ptr<Sequence>> out;
  for (auto& s : running_) {
    if (!done(*s)) continue;
    pool_.release(s->slot, s->blocks);
    out.push_back(std::move(s));
  }
  std::erase_if(running_, [](auto& s) { return !s; });
  return out;
}

}  // namespace hyla::serve
