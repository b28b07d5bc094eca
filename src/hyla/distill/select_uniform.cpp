#include "hyla/distill/select_uniform.h"

#include <algorithm>

#include "hyla/util/error.h"

namespace hyla::distill {

std::vector<int64_t> uniform_layers(int64_t n, int64_t keep) {
  HYLA_CHECK(keep >= 1 && keep <= n, "uniform: cannot keep {} of {} layers", keep, n);
  std::vector<int64_t> out;
  for (int64_t i = 0; i < keep; ++i) out.push_back(i * n / keep);
  return out;
}

std::vector<int64_t> uniform_ranking(int64_t n, int64_t keep) {
  auto out = uniform_layers(n, keep);
  for (int64_t l = 0; l < n; ++l)
    if (std::find(out.begin(), out.end(), l) == out.end()) out.push_back(l);
  return out;
}

}  // namespace hyla::distill
