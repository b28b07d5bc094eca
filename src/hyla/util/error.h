// One exception type for everything a user can act on: what failed and where
// (file, tensor, key, layer). The CLI prints `error: <what>` and exits non-zero.
#pragma once
#include <fmt/format.h>
#include <stdexcept>
#include <string>

namespace hyla {

class Error : public std::runtime_error {
 public:
  explicit Error(std::string what) : std::runtime_error(std::move(what)) {}
};

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> f, Args&&... args) {
  throw Error(fmt::format(f, std::forward<Args>(args)...));
}

// HYLA_CHECK(cond, "fmt", args...): a user-facing precondition, not an assert.
#define HYLA_CHECK(cond, ...)          \
  do {                                 \
    if (!(cond)) ::hyla::fail(__VA_ARGS__); \
  } while (0)

}  // namespace hyla
