#include "credence/core/runtime.h"

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <dlfcn.h>
#include <link.h>
#include <malloc.h>
#include <torch/cuda.h>
#include <torch/version.h>

#include <climits>
#include <cstdio>
#include <fstream>
#include <cstdlib>
#include <cstring>
#include <unistd.h>

#include "credence/core/distributed.h"
#include "credence/core/error.h"

namespace credence {

void set_threads(int threads) {
  if (threads < 1) throw InvalidArgument(fmt::format("--threads must be >= 1, got {}", threads));
  at::set_num_threads(threads);
}

int threads() { return at::get_num_threads(); }

void tune_allocator() {
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
}

void flush_denormals() { at::globalContext().setFlushDenormal(true); }

std::string blas_kernels() {
  using CoreName = char* (*)();
  auto core_name = reinterpret_cast<CoreName>(dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  return core_name ? core_name() : "";
}

void use_fast_blas_kernels(char** argv) {
  if (std::getenv("OPENBLAS_CORETYPE") || blas_kernels() != "Prescott") return;
  const char* kernels = nullptr;
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512cd"))
    kernels = "SkylakeX";
  else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    kernels = "Haswell";
  if (!kernels) return;
  setenv("OPENBLAS_CORETYPE", kernels, 1);
  execv("/proc/self/exe", argv);  // returns only on failure: go on with the generic kernels
}

std::string blas_library() {
  std::string found = "unknown";
  dl_iterate_phdr(
      [](struct dl_phdr_info* info, size_t, void* data) {
        const char* name = info->dlpi_name;
        if (name && (std::strstr(name, "blas") || std::strstr(name, "mkl"))) {
          char resolved[PATH_MAX];
          auto* out = static_cast<std::string*>(data);
          *out = realpath(name, resolved) ? resolved : name;
          return 1;
        }
        return 0;
      },
      &found);
  return found;
}

std::string runtime_summary() {
  const auto kernels = blas_kernels();
  const std::string backend = process_group_backend();
  const bool shared_memory = backend == "gloo" && shared_memory_sums_wanted();
  return fmt::format("LibTorch {} | BLAS {}{} | threads {} | CUDA devices {} | process groups {}{}", TORCH_VERSION,
                     blas_library(), kernels.empty() ? "" : " (" + kernels + " kernels)", threads(),
                     torch::cuda::device_count(), backend, shared_memory ? " (shared memory on one machine)" : "");
}

double available_memory_bytes() {
  std::ifstream meminfo("/proc/meminfo");
  std::string key, unit;
  double kib = 0;
  while (meminfo >> key >> kib >> unit)
    if (key == "MemAvailable:") return kib * 1024.0;
  return 0;
}

void check_memory(double bytes, const std::string& what, const std::string& alternative) {
  const double available = available_memory_bytes();
  if (available > 0 && bytes > available)
    throw NotSupported(fmt::format("{} needs about {:.1f} GB of memory, more than the {:.1f} GB available; {}", what,
                                   bytes / 1e9, available / 1e9, alternative));
  if (bytes > 1e9) fmt::print(stderr, "note: {} needs about {:.1f} GB of memory\n", what, bytes / 1e9);
}

}  // namespace credence
