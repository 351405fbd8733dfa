// The test programs' entry point: GoogleTest's, after choosing OpenBLAS's fast kernels as the
// command-line tool does, so tests run with the kernels users get.
#include <gtest/gtest.h>

#include "credence/core/runtime.h"

int main(int argc, char** argv) {
  credence::use_fast_blas_kernels(argv);
  testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
