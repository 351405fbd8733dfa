// What the runtime reports about the BLAS it loaded.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "credence/core/runtime.h"

namespace {

TEST(Runtime, ReportsTheOpenBlasKernelsInUse) {
  const std::string library = credence::blas_library();
  if (library.find("openblas") == std::string::npos) GTEST_SKIP() << "OpenBLAS is not the loaded BLAS: " << library;
  const std::string kernels = credence::blas_kernels();
  ASSERT_FALSE(kernels.empty());
  // A kernel family named in the environment is the one OpenBLAS loads (names compare case-blind).
  if (const char* forced = std::getenv("OPENBLAS_CORETYPE")) {
    std::string a = forced, b = kernels;
    for (auto* s : {&a, &b})
      for (auto& c : *s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    EXPECT_EQ(a, b);
  }
  EXPECT_NE(credence::runtime_summary().find("(" + kernels + " kernels)"), std::string::npos);
}

}  // namespace
