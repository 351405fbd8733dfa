#include "credence/core/runtime.h"

#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <link.h>
#include <malloc.h>
#include <torch/cuda.h>
#include <torch/version.h>

#include <climits>
#include <cstdlib>
#include <cstring>

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
  return fmt::format("LibTorch {} | BLAS {} | threads {} | CUDA devices {}", TORCH_VERSION, blas_library(), threads(),
                     torch::cuda::device_count());
}

}  // namespace credence
