#pragma once
/// Process-wide settings and facts: threads, allocator tuning, which BLAS is loaded.
#include <string>

namespace credence {

/// Sets ATen's (and so OpenMP OpenBLAS's) thread count; 1 is the default here because a second
/// thread on a busy 2-core machine can be many times slower.
void set_threads(int threads);
int threads();
/// Raises glibc's mmap/trim thresholds so freed buffers are reused rather than returned to the OS
/// (touching fresh pages is slow on small VMs). Call once at program start.
void tune_allocator();
/// The shared BLAS library actually loaded by this process (resolved path), e.g.
/// ".../openblas-openmp/libblas.so.3", or "unknown".
std::string blas_library();
/// One line: LibTorch version, BLAS, threads.
std::string runtime_summary();

}  // namespace credence
