// How well two layer rankings agree (pipeline.md §1: the cheap KL-guided variants against
// the full probes). Both take rankings (all layers, most worth keeping first), so the
// direction of each method's score does not matter and ties are already broken (by
// layer index, selection_file.h).
#pragma once
#include <cstdint>
#include <vector>

namespace hyla::distill {

// Spearman's ρ between the layers' positions in the two rankings (float64):
// ρ = 1 − 6 Σ d_ℓ² / (n (n² − 1)), d_ℓ the difference of layer ℓ's positions (no ties).
// 1 for n < 2.
double spearman_rho(const std::vector<int64_t>& ranking_a, const std::vector<int64_t>& ranking_b);

// |top-k of a ∩ top-k of b| / k.
double top_k_overlap(const std::vector<int64_t>& ranking_a, const std::vector<int64_t>& ranking_b, int64_t k);

}  // namespace hyla::distill
