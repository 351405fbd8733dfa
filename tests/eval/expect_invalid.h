#pragma once
// Shared check for the metric tests: a call throws InvalidArgument whose message names `needle`.
#include <gtest/gtest.h>

#include <string>

#include "credence/core/error.h"

namespace credence {

template <class F>
void expect_invalid(F&& f, const std::string& needle) {
  try {
    f();
    FAIL() << "expected InvalidArgument mentioning '" << needle << "'";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

}  // namespace credence
