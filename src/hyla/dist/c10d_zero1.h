// ZeRO stage 1 (Rajbhandari et al., 2020): optimizer state sharded across ranks.
// Gradients are still all-reduced in full; each rank keeps AdamW moments only for the
// parameters it owns and updates only those, then every owner broadcasts its updated
// parameters. Ownership is whole parameters, balanced greedily by element count.
#pragma once
#include <torch/torch.h>

#include <string>
#include <vector>

#include "hyla/dist/c10d_comm.h"
#include "hyla/train/adamw.h"

namespace hyla::dist {

// owner[i] for each parameter: largest first onto the least-loaded rank (ties: lowest
// rank, then lowest index), so the heaviest rank holds at most the mean plus the
// largest parameter.
std::vector<int> partition_by_numel(const std::vector<int64_t>& numels, int world_size);

class Zero1 {
 public:
  Zero1(Comm& comm, const std::vector<train::NamedParam>& params);
  std::vector<bool> owned() const;
  // Bytes of AdamW moments (exp_avg + exp_avg_sq) each rank holds, and unsharded.
  std::vector<int64_t> state_bytes_per_rank() const;
  int64_t state_bytes_unsharded() const;
  // After the optimizer step: every rank receives the parameters it does not own.
  void broadcast_updated();
  // The full optimizer state (every parameter's moments) on rank 0, empty elsewhere.
  // A collective: every rank calls it. Moments of a parameter that has never been
  // stepped are zeros once the optimizer has taken a step.
  std::vector<std::pair<std::string, torch::Tensor>> gather_state(const train::AdamW& opt);

 private:
  std::vector<size_t> owned_by(int rank, torch::ScalarType dtype) const;
  std::vector<torch::ScalarType> dtypes() const;

  Comm& comm_;
  std::vector<train::NamedParam> params_;
  std::vector<int> owner_;
};

}  // namespace hyla::dist
