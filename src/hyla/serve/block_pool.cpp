#include "hyla/serve/block_pool.h"

#include "hyla/util/error.h"

namespace hyla::serve {

BlockPool::BlockPool(int64_t num_blocks, int64_t block_size, int64_t num_slots)
    : num_blocks_(num_blocks), block_size_(block_size), slot_used_(num_slots, false) {
  HYLA_CHECK(num_blocks > 0 && block_size > 0 && num_slots > 0,
             "block pool needs blocks, block size and slots > 0 (got {}, {}, {})", num_blocks, block_size, num_slots);
  for (int64_t b = num_blocks - 1; b >= 0; --b) free_blocks_.push_back(b);
}

int64_t BlockPool::acquire(int64_t tokens, std::vector<int64_t>& blocks) {
  int64_t need = blocks_for(tokens);
  if (need > static_cast<int64_t>(free_blocks_.size()) || used_slots_ == num_slots()) return -1;
  for (size_t s = 0; s < slot_used_.size(); ++s) {
    if (slot_used_[s]) continue;
    slot_used_[s] = true;
    ++used_slots_;
    for (int64_t i = 0; i < need; ++i) {
      blocks.push_back(free_blocks_.back());
      free_blocks_.pop_back();
    }
    return static_cast<int64_t>(s);
  }
  return -1;
}

void BlockPool::release(int64_t slot, std::vector<int64_t>& blocks) {
  HYLA_CHECK(slot >= 0 && slot < num_slots() && slot_used_[slot], "block pool: slot {} is not in use", slot);
  slot_used_[slot] = false;
  --used_slots_;
  free_blocks_.insert(free_blocks_.end(), blocks.begin(), blocks.end());
  blocks.clear();
}

}  // namespace hyla::serve
