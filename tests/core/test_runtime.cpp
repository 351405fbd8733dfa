// What the runtime reports about the BLAS it loaded.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "credence/core/distributed.h"
#include "credence/core/error.h"
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

namespace {

TEST(Runtime, NamesTheProcessGroupBackend) {
  const std::string backend = credence::process_group_backend();
  EXPECT_TRUE(backend == "gloo" || backend == "none") << backend;
  EXPECT_NE(credence::runtime_summary().find("| process groups " + backend), std::string::npos)
      << credence::runtime_summary();
}

TEST(Runtime, DenseWorkBeyondTheAvailableMemoryIsRefusedUpFront) {
  const double available = credence::available_memory_bytes();
  ASSERT_GT(available, 0.0) << "no MemAvailable in /proc/meminfo";
  try {
    credence::check_memory(2 * available, "a test matrix", "use a smaller one");
    FAIL() << "no error for twice the available memory";
  } catch (const credence::NotSupported& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("a test matrix needs about"), std::string::npos) << m;
    EXPECT_NE(m.find("GB available; use a smaller one"), std::string::npos) << m;
  }
  EXPECT_NO_THROW(credence::check_memory(1e6, "a small matrix", "-"));
}

}  // namespace
