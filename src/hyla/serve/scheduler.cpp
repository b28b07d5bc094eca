#include "hyla/serve/scheduler.h"

#include <algorithm>

namespace hyla::serve {

Scheduler::Scheduler(BlockPool& pool, int64_t step_tokens, int64_t chunk)
    : pool_(pool), step_tokens_(step_tokens), chunk_(chunk) {}

std::vector<Sequence*> Scheduler::admit() {
  std::vector<Sequence*> out;
  while (!waiting_.empty()) {
    auto& s = waiting_.front();
    int64_t need = s->prompt_len + s->request.sampling.max_tokens;
    int64_t slot = pool_.acquire(need, s->blocks);
    if (slot < 0) break;
    s->slot = slot;
    s->reserved_tokens = need;
    out.push_back(s.get());
    running_.push_back(std::move(s));
    waiting_.pop_front();
  }
  return out;
}

std::vector<Work> Scheduler::plan() const {
  std::vector<Work> work;
  int64_t budget = step_tokens_;
  for (auto& s : running_)
    if (!s->prefilling() && s->pending() > 0) {
      work.push_back({s.get(), 1});
      --budget;
    }
  for (auto& s : running_) {
    if (!s->prefilling()) continue;
    if (budget <= 0 && !work.empty()) break;
    // A chunk ends at the next multiple of `chunk_`, the sequence's extra snapshot point,
    // or the prompt's end.
    int64_t to_boundary = chunk_ - s->computed % chunk_;
    if (s->snapshot_at > s->computed) to_boundary = std::min(to_boundary, s->snapshot_at - s->computed);
    int64_t n = std::min({s->prompt_len - s->computed, to_boundary, std::max<int64_t>(budget, 1)});
    work.push_back({s.get(), n});
    budget -= n;
  }
  return work;
}

std::unique_ptr<Sequence> Scheduler::remove_waiting(uint64_t id) {
  for (auto it = waiting_.begin(); it != waiting_.end(); ++it)
    if ((*it)->id == id) {
      auto s = std::move(*it);
      waiting_.erase(it);
      return s;
    }
  return nullptr;
}

}  // namespace hyla::serve
