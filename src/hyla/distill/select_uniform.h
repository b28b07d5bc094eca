// Uniform interleave (pipeline.md §1, methods.md §3.6): K attention layers spread evenly
// from layer 0, layer ⌊i·L/K⌋ for i < K — every 4th from 0 at 25 % ({0,4,…,24} of 28,
// {0,4,…,32} of 36), the sets the Taylor-Calibrate and KL-guided configs commit.
#pragma once
#include <cstdint>
#include <vector>

namespace hyla::distill {

std::vector<int64_t> uniform_layers(int64_t num_layers, int64_t keep);

// A full ranking whose top-K is uniform_layers(L, K) (the uniform set first, then the
// others ascending), with scores 1 for kept layers and 0 otherwise.
std::vector<int64_t> uniform_ranking(int64_t num_layers, int64_t keep);

}  // namespace hyla::distill
