#include "hyla/data/subprocess.h"

#include <ftw.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "hyla/util/error.h"

extern char** environ;

namespace hyla::data {
namespace fs = std::filesystem;

ProcessResult run_process(const std::vector<std::string>& argv) {
  HYLA_CHECK(!argv.empty(), "run_process: empty command");
  int pipefd[2];
  HYLA_CHECK(::pipe(pipefd) == 0, "pipe failed: {}", std::strerror(errno));
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
  posix_spawn_file_actions_addclose(&fa, pipefd[0]);
  posix_spawn_file_actions_addclose(&fa, pipefd[1]);
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(pipefd[1]);
  if (rc != 0) {
    ::close(pipefd[0]);
    fail("cannot run {}: {}", argv[0], std::strerror(rc));
  }
  ProcessResult r;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(pipefd[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    r.out.append(buf, static_cast<size_t>(n));
  }
  ::close(pipefd[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

TempDir::TempDir(std::string_view prefix) {
  std::string tmpl = (fs::temp_directory_path() / fmt::format("{}-XXXXXX", prefix)).string();
  HYLA_CHECK(::mkdtemp(tmpl.data()) != nullptr, "cannot create a temp dir {}: {}", tmpl,
             std::strerror(errno));
  path_ = tmpl;
}

// POSIX removal, not std::filesystem::remove_all: PyPI's libtorch.so exports its own
// copy of that symbol, which the dynamic linker prefers and which crashes.
static int remove_entry(const char* p, const struct stat*, int, struct FTW*) {
  return ::remove(p);
}

TempDir::~TempDir() { ::nftw(path_.c_str(), remove_entry, 16, FTW_DEPTH | FTW_PHYS); }

}  // namespace hyla::data
