// The one progress bar: rate, ETA and free-form metrics on a single stderr line,
// redrawn at most a few times a second. Silent when stderr is not a terminal unless
// `force` is set; then it prints one line every `plain_every_s` seconds instead.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace hyla {

class ProgressBar {
 public:
  ProgressBar(std::string label, int64_t total, std::string unit = "it");
  ~ProgressBar();
  // Advance to `done` (absolute). `extra` is appended, e.g. "loss 3.21".
  void update(int64_t done, const std::string& extra = "");
  void finish(const std::string& extra = "");
  void set_enabled(bool on) { enabled_ = on; }

 private:
  void draw(bool final_line);
  std::string label_, unit_, extra_;
  int64_t total_, done_ = 0, start_done_ = -1;
  std::chrono::steady_clock::time_point start_, last_draw_;
  bool tty_, enabled_ = true, finished_ = false;
  // What the last line printed showed: without a terminal each draw is a new line, so
  // finish() after an update() that already printed the same state prints nothing.
  int64_t drawn_done_ = -1;
  std::string drawn_extra_;
};

// "1.2K", "3.4M" for counts; "1:02:03" for seconds.
std::string human_count(double v);
std::string human_duration(double seconds);

}  // namespace hyla
