// Filesystem helpers. `remove_tree` exists because std::filesystem::remove_all crashes
// in binaries linked with PyPI's libtorch.so, which exports its own (ABI-incompatible)
// copy of that symbol and wins at link time.
#pragma once
#include <filesystem>

namespace hyla {
void remove_tree(const std::filesystem::path& p);  // like `rm -rf`; no error if absent
}
