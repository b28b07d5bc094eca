#include "hyla/util/progress.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>

namespace hyla {

std::string human_count(double v) {
  const char* suffix[] = {"", "K", "M", "G", "T"};
  int i = 0;
  while (v >= 1000.0 && i < 4) { v /= 1000.0; ++i; }
  return i == 0 ? fmt::format("{:.0f}", v) : fmt::format("{:.2f}{}", v, suffix[i]);
}

std::string human_duration(double s) {
  if (s < 0 || s > 1e7) return "--:--";
  auto t = static_cast<int64_t>(s + 0.5);
  if (t >= 3600) return fmt::format("{}:{:02}:{:02}", t / 3600, (t / 60) % 60, t % 60);
  return fmt::format("{:02}:{:02}", t / 60, t % 60);
}

ProgressBar::ProgressBar(std::string label, int64_t total, std::string unit)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total),
      start_(std::chrono::steady_clock::now()), last_draw_(start_), tty_(isatty(2)) {}

ProgressBar::~ProgressBar() {
  if (!finished_ && done_ > 0) finish();
}

void ProgressBar::update(int64_t done, const std::string& extra) {
  if (start_done_ < 0) start_done_ = done_;  // resumed runs: rate from where we began
  done_ = done;
  extra_ = extra;
  auto now = std::chrono::steady_clock::now();
  double since = std::chrono::duration<double>(now - last_draw_).count();
  if (since < (tty_ ? 0.2 : 10.0) && done_ < total_) return;
  last_draw_ = now;
  draw(false);
}

void ProgressBar::finish(const std::string& extra) {
  if (!extra.empty()) extra_ = extra;
  finished_ = true;
  if (!tty_ && drawn_done_ == done_ && drawn_extra_ == extra_) return;  // that line is out already
  draw(true);
}

void ProgressBar::draw(bool final_line) {
  if (!enabled_) return;
  drawn_done_ = done_;
  drawn_extra_ = extra_;
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  double rate = elapsed > 0 ? (done_ - std::max<int64_t>(start_done_, 0)) / elapsed : 0.0;
  double eta = rate > 0 ? (total_ - done_) / rate : -1;
  double frac = total_ > 0 ? static_cast<double>(done_) / total_ : 0.0;
  std::string bar;
  if (tty_) {
    int width = 24, full = static_cast<int>(frac * width);
    bar = "|" + std::string(full, '#') + std::string(width - full, ' ') + "| ";
  }
  // Below one unit a second the rate reads as seconds per unit ("4.2 s/step", not "0 step/s").
  std::string speed = rate > 0 && rate < 1 ? fmt::format("{:.1f} s/{}", 1 / rate, unit_)
                                           : fmt::format("{} {}/s", human_count(rate), unit_);
  std::string line = fmt::format("{}: {}{:3.0f}% {}/{} [{}<{}, {}]{}{}", label_, bar, frac * 100,
                                 human_count(done_), human_count(total_), human_duration(elapsed),
                                 human_duration(eta), speed, extra_.empty() ? "" : " ", extra_);
  if (tty_) {
    std::fprintf(stderr, "\r\033[K%s%s", line.c_str(), final_line ? "\n" : "");
  } else {
    std::fprintf(stderr, "%s\n", line.c_str());
  }
  std::fflush(stderr);
}

}  // namespace hyla
