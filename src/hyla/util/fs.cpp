#include "hyla/util/fs.h"

#include <ftw.h>
#include <stdio.h>

namespace hyla {

static int remove_entry(const char* p, const struct stat*, int, struct FTW*) { return ::remove(p); }

void remove_tree(const std::filesystem::path& p) {
  ::nftw(p.c_str(), remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

}  // namespace hyla
