#include "hyla/data/random.h"

#include <numeric>
#include <unordered_set>

#include "hyla/util/error.h"

namespace hyla::data {

std::vector<int64_t> Rng::sample_distinct(int64_t lo, int64_t hi, int64_t k) {
  const int64_t n = hi - lo;
  HYLA_CHECK(k >= 0 && k <= n, "cannot draw {} distinct values from [{}, {})", k, lo, hi);
  std::vector<int64_t> out;
  out.reserve(k);
  if (k * 4 >= n) {  // dense: partial Fisher–Yates over the whole range
    std::vector<int64_t> all(n);
    std::iota(all.begin(), all.end(), lo);
    for (int64_t i = 0; i < k; ++i) {
      int64_t j = i + static_cast<int64_t>(below(n - i));
      std::swap(all[i], all[j]);
      out.push_back(all[i]);
    }
    return out;
  }
  std::unordered_set<int64_t> seen;
  while (static_cast<int64_t>(out.size()) < k) {
    int64_t v = lo + static_cast<int64_t>(below(n));
    if (seen.insert(v).second) out.push_back(v);
  }
  return out;
}

}  // namespace hyla::data
