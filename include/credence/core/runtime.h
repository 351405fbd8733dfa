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

/// Flushes subnormal floats to zero on the calling thread and the threads it starts later. Weights
/// that weight decay drives towards zero become subnormal, and matrix products over them run up
/// to 26x slower on CPUs that handle subnormals in microcode (measured on an Intel Xeon). The
/// command line, the Python module, the tests and the benchmarks call it first; code that embeds
/// the library should too.
void flush_denormals();

/// OpenBLAS picks its kernels from the CPU model when it loads; a release older than the CPU
/// falls back to generic SSE3 ("Prescott") kernels, about 3x slower on matrix products. When that
/// happened on a CPU with AVX-512 (or AVX2 + FMA) and OPENBLAS_CORETYPE is unset, this sets it
/// and re-executes the program with the same arguments (the choice is fixed at load). Call first
/// thing in main(); returns normally when nothing needs changing or the re-execution fails.
/// Setting OPENBLAS_CORETYPE yourself (e.g. to Prescott) turns this off.
void use_fast_blas_kernels(char** argv);
/// OpenBLAS's kernel family in use (e.g. "SkylakeX"), or "" when OpenBLAS is not loaded.
std::string blas_kernels();
/// The shared BLAS library actually loaded by this process (resolved path), e.g.
/// ".../openblas-openmp/libblas.so.3", or "unknown".
std::string blas_library();
/// One line: LibTorch version, BLAS, threads.
std::string runtime_summary();
/// Memory the system can give this process now (MemAvailable), in bytes; 0 when unknown.
double available_memory_bytes();
/// Before dense work that needs about `bytes`: NotSupported (naming `what` and `alternative`)
/// when that exceeds the available memory, else a note of the estimate on stderr when it is over
/// 1 GB, so long dense work never starts silently or dies for lack of memory half-way.
void check_memory(double bytes, const std::string& what, const std::string& alternative);

}  // namespace credence
