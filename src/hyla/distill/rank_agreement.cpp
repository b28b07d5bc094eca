#include "hyla/distill/rank_agreement.h"

#include <algorithm>

#include "hyla/util/error.h"

namespace hyla::distill {
namespace {

// position[ℓ] = where layer ℓ stands in `ranking`; checks it is a permutation of 0..n-1.
std::vector<int64_t> positions(const std::vector<int64_t>& ranking, size_t n) {
  HYLA_CHECK(ranking.size() == n, "rankings of different lengths ({} and {})", ranking.size(), n);
  std::vector<int64_t> pos(n, -1);
  for (size_t i = 0; i < n; ++i) {
    int64_t l = ranking[i];
    HYLA_CHECK(l >= 0 && size_t(l) < n && pos[l] < 0, "ranking is not a permutation of the layers");
    pos[l] = int64_t(i);
  }
  return pos;
}

}  // namespace

double spearman_rho(const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
  const size_t n = a.size();
  auto pa = positions(a, n), pb = positions(b, n);
  if (n < 2) return 1.0;
  double d2 = 0;
  for (size_t l = 0; l < n; ++l) d2 += double(pa[l] - pb[l]) * double(pa[l] - pb[l]);
  double nn = double(n);
  return 1.0 - 6.0 * d2 / (nn * (nn * nn - 1.0));
}

double top_k_overlap(const std::vector<int64_t>& a, const std::vector<int64_t>& b, int64_t k) {
  positions(a, a.size());
  positions(b, a.size());
  HYLA_CHECK(k >= 1 && size_t(k) <= a.size(), "top-k overlap: k = {} of {} layers", k, a.size());
  std::vector<int64_t> ta(a.begin(), a.begin() + k), tb(b.begin(), b.begin() + k);
  std::sort(ta.begin(), ta.end());
  std::sort(tb.begin(), tb.end());
  std::vector<int64_t> both;
  std::set_intersection(ta.begin(), ta.end(), tb.begin(), tb.end(), std::back_inserter(both));
  return double(both.size()) / double(k);
}

}  // namespace hyla::distill
