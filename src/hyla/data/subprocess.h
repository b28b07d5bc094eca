// Runs an external program (tar, for the packaged corpora) without a shell, so
// paths need no quoting; captures its stdout.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

namespace hyla::data {

struct ProcessResult {
  int exit_code = -1;
  std::string out;
};

ProcessResult run_process(const std::vector<std::string>& argv);

// A fresh directory under the system temp dir, removed with everything in it when the
// object dies.
class TempDir {
 public:
  explicit TempDir(std::string_view prefix = "hyla-data");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace hyla::data
