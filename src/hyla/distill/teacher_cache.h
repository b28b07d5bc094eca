// Top-k teacher logits cached on disk (pipeline.md §5, **proposed**): a KL stage with
// top_k > 0 stores, for every micro-batch it reads, the teacher's k most likely tokens and
// their renormalised log-probabilities; a later run over the same data (a resumed run,
// another student, a second epoch) reads them instead of running the teacher.
//
//   <dir>/key.json                      what the entries depend on (teacher, k, τ, shapes)
//   <dir>/e<epoch>-i<index>-r<rank>.safetensors   indices (int64), log_probs (float32)
//
// Entries are written atomically; a directory made for another key is refused.
#pragma once
#include <filesystem>
#include <optional>

#include <nlohmann/json.hpp>

#include "hyla/data/batch_sampler.h"
#include "hyla/distill/losses.h"

namespace hyla::distill {

class TeacherCache {
 public:
  TeacherCache(std::filesystem::path dir, nlohmann::json key);
  std::optional<TopK> get(const data::DataPosition& pos, int rank) const;
  void put(const data::DataPosition& pos, int rank, const TopK& t) const;
  int64_t hits() const { return hits_; }
  int64_t misses() const { return misses_; }

 private:
  std::filesystem::path entry(const data::DataPosition& pos, int rank) const;
  std::filesystem::path dir_;
  mutable int64_t hits_ = 0, misses_ = 0;
};

}  // namespace hyla::distill
