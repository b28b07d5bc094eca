// Atomic file replacement: write to `<path>.tmp.<pid>`, fsync, rename over `path`,
// fsync the directory. A reader never sees a half-written file; a crash leaves the
// previous version intact.
#pragma once
#include <filesystem>
#include <functional>
#include <ostream>
#include <string_view>

namespace hyla::io {

void write_file_atomic(const std::filesystem::path& path,
                       const std::function<void(std::ostream&)>& writer);
void write_text_atomic(const std::filesystem::path& path, std::string_view text);
std::string read_text_file(const std::filesystem::path& path);

}  // namespace hyla::io
