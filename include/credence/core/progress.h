#pragma once
/// A one-line progress display (epochs, batches, ETA) on a terminal; silent otherwise.
#include <chrono>
#include <functional>
#include <string>

namespace credence {

/// Wall-clock seconds since `start` (steady clock): how long a step took.
inline double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

/// A check that every progress update on the thread that set it runs first, so a host language
/// can stop a long fit (Python's Ctrl-C); it stops the work by throwing. Empty: no check.
void set_interrupt_check(std::function<void()> check);

class Progress {
 public:
  /// Shows progress only when stderr is a terminal and `quiet` is false.
  Progress(std::string label, long total, bool quiet);
  ~Progress();
  /// Moves to `done` of `total`, with a short status such as "loss 0.41".
  void update(long done, const std::string& status = "");
  void finish();
  bool enabled() const { return enabled_; }

 private:
  std::string label_;
  long total_;
  bool enabled_;
  bool finished_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace credence
