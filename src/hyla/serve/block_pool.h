// Decode memory under a budget: KV blocks of `block_size` tokens for the attention
// layers (all attention layers of a sequence use the same block count, as in vLLM) and
// fixed-size state slots for the linear layers (one slot holds every linear layer's
// recurrent state and conv tails for one sequence, whatever its length).
//
// A sequence reserves, when admitted, the blocks its prompt plus `max_tokens` can need,
// so a running sequence never waits for memory and nothing is ever preempted. Blocks
// are the unit of accounting; each sequence's K/V live in one contiguous tensor per
// layer (LibTorch's attention reads contiguous K/V), and a restored prefix is a view of
// the prefix cache's K/V until the sequence appends (then it is copied once).
#pragma once
#include <cstdint>
#include <vector>

namespace hyla::serve {

class BlockPool {
 public:
  BlockPool(int64_t num_blocks, int64_t block_size, int64_t num_slots);
  int64_t blocks_for(int64_t tokens) const { return (tokens + block_size_ - 1) / block_size_; }
  // Reserves blocks for `tokens` and one state slot; returns the slot, or -1 (and
  // reserves nothing) if either is short.
  int64_t acquire(int64_t tokens);
  void release(int64_t slot, int64_t tokens);
  bool could_ever_fit(int64_t tokens) const { return blocks_for(tokens) <= num_blocks_; }

  int64_t block_size() const { return block_size_; }
  int64_t num_blocks() const { return num_blocks_; }
  int64_t used_blocks() const { return used_blocks_; }
  int64_t num_slots() const { return static_cast<int64_t>(slot_used_.size()); }
  int64_t used_slots() const { return used_slots_; }

 private:
  int64_t num_blocks_, block_size_, used_blocks_ = 0, used_slots_ = 0;
  std::vector<bool> slot_used_;
};

}  // namespace hyla::serve
