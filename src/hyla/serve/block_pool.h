// Decode memory under a budget: KV blocks of `block_size` tokens for the attention
// layers (all attention layers of a sequence use the same block ids, as in vLLM) and
// fixed-size state slots for the linear layers (one slot holds every linear layer's
// recurrent state and conv tails for one sequence, whatever its length).
//
// A sequence reserves, when admitted, the blocks its prompt plus `max_tokens` can need,
// so a running sequence never waits for memory and nothing is ever preempted. The ids
// index the K/V pools of PagedCache (its block table); blocks need not be contiguous.
#pragma once
#include <cstdint>
#include <vector>

namespace hyla::serve {

class BlockPool {
 public:
  BlockPool(int64_t num_blocks, int64_t block_size, int64_t num_slots);
  int64_t blocks_for(int64_t tokens) const { return (tokens + block_size_ - 1) / block_size_; }
  // Reserves blocks for `tokens` (their ids appended to `blocks`) and one state slot;
  // returns the slot, or -1 (and reserves nothing) if either is short.
  int64_t acquire(int64_t tokens, std::vector<int64_t>& blocks);
  void release(int64_t slot, std::vector<int64_t>& blocks);
  bool could_ever_fit(int64_t tokens) const { return blocks_for(tokens) <= num_blocks_; }

  int64_t block_size() const { return block_size_; }
  int64_t num_blocks() const { return num_blocks_; }
  int64_t used_blocks() const { return num_blocks_ - static_cast<int64_t>(free_blocks_.size()); }
  int64_t num_slots() const { return static_cast<int64_t>(slot_used_.size()); }
  int64_t used_slots() const { return used_slots_; }

 private:
  int64_t num_blocks_, block_size_, used_slots_ = 0;
  std::vector<int64_t> free_blocks_;  // a stack: the most recently freed are reused first
  std::vector<bool> slot_used_;
};

}  // namespace hyla::serve
