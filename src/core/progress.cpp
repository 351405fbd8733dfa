#include "credence/core/progress.h"

#include <thread>

#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>

namespace credence {

Progress::Progress(std::string label, long total, bool quiet)
    : label_(std::move(label)), total_(total), enabled_(!quiet && isatty(fileno(stderr)) && total > 0) {
  start_ = last_draw_ = std::chrono::steady_clock::now();
}

Progress::~Progress() { finish(); }

namespace {
std::function<void()> interrupt_check;
std::thread::id interrupt_thread;
}  // namespace

void set_interrupt_check(std::function<void()> check) {
  interrupt_check = std::move(check);
  interrupt_thread = std::this_thread::get_id();
}

void Progress::update(long done, const std::string& status) {
  // Only on the thread that set the check: workers must not throw out of their threads.
  if (interrupt_check && std::this_thread::get_id() == interrupt_thread) interrupt_check();
  if (!enabled_ || finished_) return;
  auto now = std::chrono::steady_clock::now();
  // Redraw at most 10 times a second: terminals are slow.
  if (done < total_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  double elapsed = std::chrono::duration<double>(now - start_).count();
  double frac = static_cast<double>(done) / total_;
  double eta = done > 0 ? elapsed * (1.0 - frac) / frac : 0.0;
  const int width = 24;
  int filled = static_cast<int>(frac * width);
  std::string bar = std::string(filled, '=') + std::string(width - filled, ' ');
  fmt::print(stderr, "\r{} [{}] {:3.0f}% {} ETA {:.0f}s   ", label_, bar, 100 * frac, status, eta);
  std::fflush(stderr);
}

void Progress::finish() {
  if (!enabled_ || finished_) return;
  finished_ = true;
  fmt::print(stderr, "\r\033[K");
  std::fflush(stderr);
}

}  // namespace credence
