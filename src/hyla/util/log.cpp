#include "hyla/util/log.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>

namespace hyla::log {
namespace {
std::atomic<Level> g_level{Level::Info};
std::mutex g_mutex;
}  // namespace

void set_level(Level l) { g_level = l; }
Level level() { return g_level; }

void write(Level l, std::string_view message) {
  static const char* names[] = {"debug", "info", "warn", "error"};
  std::lock_guard lock(g_mutex);
  auto now = std::chrono::system_clock::now();
  auto t = std::chrono::system_clock::to_time_t(now);
  std::tm tm{};
  localtime_r(&t, &tm);
  char stamp[16];
  std::strftime(stamp, sizeof stamp, "%H:%M:%S", &tm);
  std::fprintf(stderr, "[%s %s] %.*s\n", stamp, names[static_cast<int>(l)],
               static_cast<int>(message.size()), message.data());
}

}  // namespace hyla::log
