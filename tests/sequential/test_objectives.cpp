// Sobol designs and the test objectives at their known minima.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cmath>

#include "credence/core/error.h"
#include "credence/sequential/objectives.h"

namespace credence {

TEST(Sobol, IsAScrambledNetThatContinues) {
  auto p = sobol_points(64, 3, 5);
  ASSERT_EQ(p.sizes(), (std::vector<int64_t>{64, 3}));
  EXPECT_GE(p.min().item<double>(), 0.0);
  EXPECT_LT(p.max().item<double>(), 1.0);
  // A (0, m, 1)-net in each coordinate: one point in each of the 64 intervals [i/64, (i+1)/64).
  for (int d = 0; d < 3; ++d) {
    auto bins = at::floor(p.select(1, d) * 64).to(at::kLong);
    EXPECT_EQ(std::get<0>(at::_unique(bins)).numel(), 64) << "coordinate " << d;
  }
  EXPECT_TRUE(at::equal(sobol_points(10, 3, 5, 54), p.narrow(0, 54, 10)));
  EXPECT_FALSE(at::equal(sobol_points(64, 3, 6), p));
  EXPECT_THROW(sobol_points(4, 0, 1), InvalidArgument);
}

TEST(Objectives, KnownMinima) {
  auto at_point = [](const std::string& spec, std::vector<double> x) { return make_objective(spec).value(x); };
  EXPECT_NEAR(at_point("branin", {-M_PI, 12.275}), 0.397887, 1e-6);
  EXPECT_NEAR(at_point("branin", {9.42478, 2.475}), 0.397887, 1e-6);
  EXPECT_NEAR(at_point("hartmann6", {0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573}), -3.32237, 1e-5);
  EXPECT_NEAR(at_point("ackley:10", std::vector<double>(10, 0.0)), 0.0, 1e-12);
  EXPECT_GT(at_point("ackley:10", std::vector<double>(10, 1.0)), 3.0);
  EXPECT_NEAR(at_point("rosenbrock:4", std::vector<double>(4, 1.0)), 0.0, 1e-12);
  EXPECT_NEAR(at_point("levy:5", std::vector<double>(5, 1.0)), 0.0, 1e-12);
  auto o = make_objective("hartmann6?noise=0.1");
  EXPECT_EQ(o.dim(), 6);
  EXPECT_EQ(o.noise, 0.1);
  EXPECT_NEAR(o.minimum, -3.32237, 1e-5);
  EXPECT_THROW(make_objective("ackley"), InvalidArgument);  // needs :D
  EXPECT_THROW(make_objective("branin:3"), InvalidArgument);
  EXPECT_THROW(make_objective("sphere:2"), InvalidArgument);
  EXPECT_THROW(make_objective("branin?noise=-1"), InvalidArgument);
}

}  // namespace credence
