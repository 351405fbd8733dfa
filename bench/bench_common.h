#pragma once
// Small helpers shared by the benchmark programs: machine facts, dates, statistics.
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <fstream>
#include <string>
#include <vector>

#include "credence/core/runtime.h"

namespace credence::bench {

inline std::string hostname() {
  char buf[256] = {0};
  if (gethostname(buf, sizeof(buf) - 1) != 0) return "unknown";
  return buf;
}

inline long nproc() { return sysconf(_SC_NPROCESSORS_ONLN); }

/// "model name" of the first processor in /proc/cpuinfo, or "unknown".
inline std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      auto colon = line.find(':');
      if (colon == std::string::npos) break;
      auto value = line.substr(colon + 1);
      value.erase(0, value.find_first_not_of(" \t"));
      return value;
    }
  }
  return "unknown";
}

/// "host | N cores | CPU model".
inline std::string machine_summary() {
  return fmt::format("{} | {} cores | {}", hostname(), nproc(), cpu_model());
}

/// Local date and time, "YYYY-MM-DD HH:MM:SS".
inline std::string now_string() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

inline double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

inline double median(std::vector<double> v) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : 0.5 * (v[m - 1] + v[m]);
}

inline double mean(const std::vector<double>& v) {
  if (v.empty()) return NAN;
  double s = 0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}

/// Standard error of the mean (sample standard deviation / sqrt(n)); NaN for n < 2.
inline double stderr_of_mean(const std::vector<double>& v) {
  if (v.size() < 2) return NAN;
  double m = mean(v), ss = 0;
  for (double x : v) ss += (x - m) * (x - m);
  return std::sqrt(ss / static_cast<double>(v.size() - 1)) / std::sqrt(static_cast<double>(v.size()));
}

/// What every benchmark does first: tune the allocator, flush subnormals, set the threads, and
/// print the machine and the runtime (LibTorch, the BLAS actually loaded, threads) so its numbers
/// can be traced.
inline void start(int threads) {
  tune_allocator();
  flush_denormals();
  set_threads(threads);
  fmt::print("machine: {}\nruntime: {}\n", machine_summary(), runtime_summary());
}

}  // namespace credence::bench
