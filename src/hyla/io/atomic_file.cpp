#include "hyla/io/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <fstream>
#include <cstring>
#include <sstream>

#include "hyla/util/error.h"

namespace hyla::io {
namespace fs = std::filesystem;

static void fsync_path(const fs::path& p, bool directory) {
  int fd = ::open(p.c_str(), directory ? O_RDONLY | O_DIRECTORY : O_RDONLY);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

void write_file_atomic(const fs::path& path, const std::function<void(std::ostream&)>& writer) {
  fs::path dir = path.has_parent_path() ? path.parent_path() : fs::path(".");
  std::error_code ec;
  fs::create_directories(dir, ec);
  fs::path tmp = path;
  tmp += fmt::format(".tmp.{}", ::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    HYLA_CHECK(out.good(), "cannot write {}: {}", tmp.string(), std::strerror(errno));
    writer(out);
    out.flush();
    HYLA_CHECK(out.good(), "write failed for {} (disk full?)", tmp.string());
  }
  fsync_path(tmp, false);
  fs::rename(tmp, path, ec);
  if (ec) {
    fs::remove(tmp);
    fail("cannot rename {} to {}: {}", tmp.string(), path.string(), ec.message());
  }
  fsync_path(dir, true);
}

void write_text_atomic(const fs::path& path, std::string_view text) {
  write_file_atomic(path, [&](std::ostream& o) { o.write(text.data(), text.size()); });
}

std::string read_text_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  HYLA_CHECK(in.good(), "cannot open {}: {}", path.string(),
             fs::exists(path) ? "permission denied or not a file" : "no such file");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace hyla::io
