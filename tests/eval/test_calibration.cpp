// Reliability diagram, MCE, class-wise ECE, PIT, quantile calibration and CRPS by hand.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>

#include "credence/eval/calibration.h"
#include "credence/eval/metrics.h"
#include "expect_invalid.h"
#include "tensors.h"

namespace credence {
namespace {

Predictive gaussian(std::initializer_list<double> mean, std::initializer_list<double> var) {
  Predictive p;
  p.mean = f64(mean, {static_cast<int64_t>(mean.size())});
  p.var = f64(var, {static_cast<int64_t>(var.size())});
  return p;
}

TEST(Calibration, ReliabilityDiagramFiveBins) {
  // Right-closed bins: (.2,.4] row 3; (.4,.6] rows 1, 2; (.6,.8] row 0.
  auto d = reliability_diagram(four_by_three(), four_labels(), 5);
  ASSERT_EQ(d.edges.size(), 6u);
  EXPECT_DOUBLE_EQ(d.edges[1], 0.2);
  EXPECT_EQ(d.count, (std::vector<int64_t>{0, 1, 2, 1, 0}));
  EXPECT_NEAR(d.mean_confidence[1], 0.4, 1e-12);
  EXPECT_NEAR(d.mean_confidence[2], 0.55, 1e-12);
  EXPECT_NEAR(d.accuracy[2], 0.5, 1e-12);
  EXPECT_NEAR(d.accuracy[3], 1.0, 1e-12);
  EXPECT_EQ(d.accuracy[0], 0.0);  // empty bin
  EXPECT_EQ(confidence_histogram(four_by_three(), 5), d.count);
}

TEST(Calibration, MceIsTheWorstBin) {
  // Gaps: |1 - .4| = .6, |.5 - .55| = .05, |1 - .7| = .3.
  EXPECT_NEAR(mce(four_by_three(), four_labels(), 5), 0.6, 1e-12);
  // One bin: |.75 - .55|.
  EXPECT_NEAR(mce(four_by_three(), four_labels(), 1), 0.2, 1e-12);
}

TEST(Calibration, ClasswiseEceTwoBins) {
  // Bins (0,.5], (.5,1]; per class sum over bins of |#(y=c) - sum p_c|:
  //   c0: p [.7,.1,.25,.3], y=c [1,0,0,0]: low |0 - .65| + high |1 - .7|  = .95
  //   c1: p [.2,.6,.25,.4], y=c [0,0,0,1]: low |1 - .85| + high |0 - .6|  = .75
  //   c2: p [.1,.3,.5,.3],  y=c [0,1,1,0]: low |2 - 1.2|                  = .8
  // (.95 + .75 + .8) / (N C = 12) = 2.5 / 12
  EXPECT_NEAR(classwise_ece(four_by_three(), four_labels(), 2), 2.5 / 12.0, 1e-12);
}

TEST(Calibration, ClassificationBadInputs) {
  expect_invalid([] { mce(four_by_three(), four_labels(), 0); }, "bins must be >= 1");
  expect_invalid([] { classwise_ece(four_by_three(), labels({0, 1})); }, "labels have shape [2]");
  expect_invalid([] { confidence_histogram(gaussian({0}, {1})); }, "needs a classification");
}

TEST(Calibration, PitOfAGaussian) {
  // N(0, 1) at y = 0, 1, -1: Phi(0) = .5, Phi(1) = .841344746, Phi(-1) = .158655254.
  auto p = gaussian({0, 0, 0}, {1, 1, 1});
  auto pit = pit_values(p, f64({0, 1, -1}, {3}));
  EXPECT_NEAR(pit[0].item<double>(), 0.5, 1e-12);
  EXPECT_NEAR(pit[1].item<double>(), 0.8413447460685429, 1e-12);
  EXPECT_NEAR(pit[2].item<double>(), 0.15865525393145707, 1e-12);
  // Four bins [0,.25) [.25,.5) [.5,.75) [.75,1]: .159 -> 0, .5 -> 2, .841 -> 3.
  auto h = pit_histogram(p, f64({0, 1, -1}, {3}), 4);
  EXPECT_NEAR(h[0], 1.0 / 3, 1e-12);
  EXPECT_EQ(h[1], 0.0);
  EXPECT_NEAR(h[2], 1.0 / 3, 1e-12);
  EXPECT_NEAR(h[3], 1.0 / 3, 1e-12);
}

TEST(Calibration, PitOfAMixture) {
  // .5 N(-1, 1) + .5 N(1, 1) at 0: (Phi(1) + Phi(-1)) / 2 = .5; at 1: (Phi(2) + .5) / 2.
  Predictive p;
  p.sample_mean = f64({-1, -1, 1, 1}, {2, 2});
  p.sample_var = f64({1, 1, 1, 1}, {2, 2});
  auto pit = pit_values(p, f64({0, 1}, {2}));
  EXPECT_NEAR(pit[0].item<double>(), 0.5, 1e-12);
  EXPECT_NEAR(pit[1].item<double>(), (0.9772498680518208 + 0.5) / 2, 1e-12);
}

TEST(Calibration, QuantileCalibrationErrorByHand) {
  // PIT [.5, .841, .159]. One level q = .5: 2 of 3 at or below -> |2/3 - 1/2| = 1/6.
  // Levels .25, .5, .75: fractions 1/3, 2/3, 2/3 -> (1/12 + 1/6 + 1/12) / 3 = 1/9.
  auto p = gaussian({0, 0, 0}, {1, 1, 1});
  auto y = f64({0, 1, -1}, {3});
  EXPECT_NEAR(quantile_calibration_error(p, y, 1), 1.0 / 6, 1e-12);
  EXPECT_NEAR(quantile_calibration_error(p, y, 3), 1.0 / 9, 1e-12);
  // Central intervals: 50% is +-.674 (covers only 0), 90% is +-1.645 (covers all).
  auto cov = coverage_at(p, y, {0.5, 0.9});
  EXPECT_NEAR(cov[0], 1.0 / 3, 1e-12);
  EXPECT_NEAR(cov[1], 1.0, 1e-12);
}

TEST(Calibration, CrpsOfAGaussianClosedForm) {
  // sigma [z (2 Phi(z) - 1) + 2 phi(z) - 1/sqrt(pi)]:
  //   z = 0: 2 phi(0) - 1/sqrt(pi) = .797884561 - .564189584 = .233694977
  //   z = 1: .682689492 + .483941449 - .564189584 = .602441358; sigma = 2 doubles it.
  auto p = gaussian({0, 0, 2}, {1, 1, 4});
  auto c = crps_values(p, f64({0, 1, 4}, {3}));
  EXPECT_NEAR(c[0].item<double>(), 0.2336949772551619, 1e-9);
  EXPECT_NEAR(c[1].item<double>(), 0.6024413576276163, 1e-9);
  EXPECT_NEAR(c[2].item<double>(), 2 * 0.6024413576276163, 1e-9);
  EXPECT_NEAR(crps(p, f64({0, 1, 4}, {3})), (0.2336949772551619 + 3 * 0.6024413576276163) / 3, 1e-9);
}

TEST(Calibration, CrpsOfAMixtureMatchesTheIntegral) {
  // Two identical components are one Gaussian.
  Predictive same;
  same.sample_mean = f64({0, 0}, {2, 1});
  same.sample_var = f64({1, 1}, {2, 1});
  EXPECT_NEAR(crps(same, f64({1}, {1})), 0.6024413576276163, 1e-9);
  // .3 N(-1, .25) + .7 N(1, 1) at y = .5 against int (F(x) - 1[x >= y])^2 dx by the trapezoid rule.
  Predictive mix;
  mix.sample_mean = f64({-1, 1}, {2, 1});
  mix.sample_var = f64({0.25, 1}, {2, 1});
  mix.weights = f64({0.3, 0.7}, {2});
  // Split at y so that the step of the indicator is not smeared over a grid cell.
  auto cdf = [](const torch::Tensor& x) {
    auto c = [](const torch::Tensor& z) { return 0.5 * at::erfc(-z / std::sqrt(2.0)); };
    return 0.3 * c((x + 1) / 0.5) + 0.7 * c(x - 1);
  };
  auto below = at::linspace(-20, 0.5, 200001, at::kDouble);
  auto above = at::linspace(0.5, 20, 200001, at::kDouble);
  double integral = at::trapz(cdf(below).pow(2), below).item<double>() +
                    at::trapz((1 - cdf(above)).pow(2), above).item<double>();
  EXPECT_NEAR(crps(mix, f64({0.5}, {1})), integral, 1e-6);
}

TEST(Calibration, RegressionBadInputs) {
  auto p = gaussian({0, 0}, {1, 1});
  expect_invalid([&] { crps(p, f64({0}, {1})); }, "targets have shape [1]");
  expect_invalid([&] { pit_histogram(p, f64({0, 0}, {2}), 0); }, "bins must be >= 1");
  expect_invalid([&] { quantile_calibration_error(p, f64({0, 0}, {2}), 0); }, "levels must be >= 1");
  expect_invalid([&] { coverage_at(p, f64({0, 0}, {2}), {1.5}); }, "level must be in (0, 1)");
  expect_invalid([&] { crps(gaussian({0}, {0}), f64({0}, {1})); }, "variances must be positive");
}

}  // namespace
}  // namespace credence
