#include "hyla/dist/launch.h"

#include <cstdlib>

#include "hyla/util/error.h"

namespace hyla::dist {

#ifdef HYLA_DIST
std::shared_ptr<train::DataParallel> make_c10d_data_parallel(const train::Recipe& recipe);
#endif

std::shared_ptr<train::DataParallel> data_parallel_from_env(const train::Recipe& recipe) {
  const char* world = std::getenv("WORLD_SIZE");
  const char* addr = std::getenv("MASTER_ADDR");
  if (!world || !addr) return std::make_shared<train::DataParallel>();
#ifdef HYLA_DIST
  return make_c10d_data_parallel(recipe);
#else
  fail("WORLD_SIZE={} is set but this build of hyla has no distributed support (HYLA_DIST=OFF)", world);
#endif
}

}  // namespace hyla::dist
