// The test programs' entry point: GoogleTest's, after choosing OpenBLAS's fast kernels as the
// command-line tool does, and flushing subnormals as it does, so tests run as users' fits do.
#include <gtest/gtest.h>

#include "credence/core/runtime.h"

int main(int argc, char** argv) {
  credence::use_fast_blas_kernels(argv);
  credence::flush_denormals();
  testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
