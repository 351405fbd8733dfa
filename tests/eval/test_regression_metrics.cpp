// Regression metrics, mixture quantiles and coverage against values worked out by hand.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cmath>
#include <string>
#include <vector>

#include "credence/core/error.h"
#include "credence/eval/metrics.h"
#include "expect_invalid.h"
#include "tensors.h"

namespace credence {
namespace {

const double kHalfLog2Pi = 0.9189385332046727;  // 0.5 * ln(2 pi)

torch::Tensor vec(std::vector<double> v) { return f64(v, {static_cast<int64_t>(v.size())}); }

Predictive gaussian(std::vector<double> mean, std::vector<double> var) {
  Predictive p;
  p.task = Task::Regression;
  p.mean = vec(mean);
  p.var = vec(var);
  return p;
}

/// A mixture predictive with components [S][N]; the moments are filled in as well.
Predictive mixture(std::vector<std::vector<double>> means, std::vector<std::vector<double>> vars,
                   std::vector<double> weights = {}) {
  const int64_t S = means.size(), N = means[0].size();
  std::vector<double> m, v;
  for (auto& r : means) m.insert(m.end(), r.begin(), r.end());
  for (auto& r : vars) v.insert(v.end(), r.begin(), r.end());
  Predictive p;
  p.sample_mean = f64(m, {S, N});
  p.sample_var = f64(v, {S, N});
  torch::Tensor w = weights.empty() ? at::full({S}, 1.0 / S, at::kDouble) : vec(weights);
  if (!weights.empty()) p.weights = w;
  p.mean = (p.sample_mean * w.unsqueeze(1)).sum(0);
  p.var = ((p.sample_var + p.sample_mean.pow(2)) * w.unsqueeze(1)).sum(0) - p.mean.pow(2);
  return p;
}

double phi(double z) { return 0.5 * std::erfc(-z / std::sqrt(2.0)); }
double normal_pdf(double x, double m, double v) {
  return std::exp(-0.5 * (x - m) * (x - m) / v) / std::sqrt(2.0 * M_PI * v);
}

// Three points: mean [1, 2, 3], var [1, 4, 0.25], y [2, 0, 3].
TEST(RegressionMetrics, RmseByHand) {
  // errors -1, 2, 0 -> squares 1, 4, 0 -> mean 5/3 -> sqrt(5/3) = 1.290994449
  EXPECT_NEAR(rmse(gaussian({1, 2, 3}, {1, 4, 0.25}), vec({2, 0, 3})), 1.2909944487358056, 1e-12);
}

TEST(RegressionMetrics, GaussianNllByHand) {
  // NLL_i = 0.5 ln(2 pi) + 0.5 ln v_i + (y_i - m_i)^2 / (2 v_i)
  //   i=0: 0.918939 + 0.5 ln 1    + 1 / 2      = 0.918939 + 0       + 0.5
  //   i=1: 0.918939 + 0.5 ln 4    + 4 / 8      = 0.918939 + 0.693147 + 0.5
  //   i=2: 0.918939 + 0.5 ln 0.25 + 0 / 0.5    = 0.918939 - 0.693147 + 0
  // mean = 0.918939 + (0.5 + 0.5) / 3 = 1.252271867
  EXPECT_NEAR(regression_nll(gaussian({1, 2, 3}, {1, 4, 0.25}), vec({2, 0, 3})),
              1.252271866538006, 1e-12);
}

TEST(RegressionMetrics, SymmetricMixtureNllByHand) {
  // Components N(-1, 1), N(1, 1), equal weights, y = 0: both densities are
  // exp(-1/2)/sqrt(2 pi), so NLL = 0.5 ln(2 pi) + 0.5 = 1.418938533.
  Predictive p = mixture({{-1}, {1}}, {{1}, {1}});
  EXPECT_NEAR(regression_nll(p, vec({0})), kHalfLog2Pi + 0.5, 1e-12);
}

TEST(RegressionMetrics, WeightedMixtureNllMatchesDirectFormula) {
  // Two points, components (m, v): point 0: (0, 1) and (2, 4); point 1: (1, 0.5) and (-1, 2).
  Predictive p = mixture({{0, 1}, {2, -1}}, {{1, 0.5}, {4, 2}}, {0.3, 0.7});
  std::vector<double> y = {1.0, 0.0};
  double direct = 0;
  direct += -std::log(0.3 * normal_pdf(1.0, 0, 1) + 0.7 * normal_pdf(1.0, 2, 4));
  direct += -std::log(0.3 * normal_pdf(0.0, 1, 0.5) + 0.7 * normal_pdf(0.0, -1, 2));
  EXPECT_NEAR(regression_nll(p, vec(y)), direct / 2, 1e-12);

  // Uniform weights when weights are undefined.
  p.weights = torch::Tensor();
  double uniform = -std::log(0.5 * normal_pdf(1.0, 0, 1) + 0.5 * normal_pdf(1.0, 2, 4)) -
                   std::log(0.5 * normal_pdf(0.0, 1, 0.5) + 0.5 * normal_pdf(0.0, -1, 2));
  EXPECT_NEAR(regression_nll(p, vec(y)), uniform / 2, 1e-12);
}

TEST(RegressionMetrics, MixtureNllIsStableFarInTheTail) {
  // N(0,1), N(1,1), y = 60: log pdfs -0.9189 - 1800 and -0.9189 - 1740.5 (exp underflows).
  // logsumexp: -0.9189 - 1740.5 + ln(0.5 (1 + e^-59.5)) ~= -0.9189 - 1740.5 - ln 2
  // NLL = 0.918939 + 1740.5 + 0.693147 = 1742.112085714
  Predictive p = mixture({{0}, {1}}, {{1}, {1}});
  EXPECT_NEAR(regression_nll(p, vec({60})), 1742.1120857137646, 1e-9);
}

TEST(RegressionMetrics, RmseUsesMixtureMeanWhenMeanMissing) {
  // weights .25/.75, component means 0 and 4 -> mixture mean 3; y = 1 -> rmse 2
  Predictive p = mixture({{0}, {4}}, {{1}, {1}}, {0.25, 0.75});
  p.mean = torch::Tensor();
  p.var = torch::Tensor();
  EXPECT_NEAR(rmse(p, vec({1})), 2.0, 1e-12);
}

TEST(PredictiveQuantile, SingleGaussian) {
  Predictive p = gaussian({0, 10, -3}, {1, 4, 0.25});
  torch::Tensor q = predictive_quantile(p, 0.95);
  // z_0.95 = 1.644853627: 0 + 1*z, 10 + 2*z, -3 + 0.5*z
  const double z = 1.6448536269514722;
  EXPECT_NEAR(q[0].item<double>(), z, 1e-12);
  EXPECT_NEAR(q[1].item<double>(), 10 + 2 * z, 1e-12);
  EXPECT_NEAR(q[2].item<double>(), -3 + 0.5 * z, 1e-12);
  torch::Tensor med = predictive_quantile(p, 0.5);
  EXPECT_NEAR(med[1].item<double>(), 10.0, 1e-12);
  EXPECT_NEAR(predictive_quantile(p, 0.025)[0].item<double>(), -1.959963984540054, 1e-12);
}

TEST(PredictiveQuantile, MixtureCdfAtQuantileEqualsQ) {
  // Point 0: 0.4 N(0, 1) + 0.6 N(3, 0.25); point 1: 0.4 N(-10, 9) + 0.6 N(10, 1).
  Predictive p = mixture({{0, -10}, {3, 10}}, {{1, 9}, {0.25, 1}}, {0.4, 0.6});
  for (double q : {0.001, 0.05, 0.3, 0.4, 0.5, 0.9, 0.999}) {
    torch::Tensor x = predictive_quantile(p, q);
    ASSERT_EQ(x.size(0), 2);
    double x0 = x[0].item<double>(), x1 = x[1].item<double>();
    double cdf0 = 0.4 * phi(x0) + 0.6 * phi((x0 - 3) / 0.5);
    double cdf1 = 0.4 * phi((x1 + 10) / 3) + 0.6 * phi(x1 - 10);
    EXPECT_NEAR(cdf0, q, 1e-10) << "q=" << q;
    EXPECT_NEAR(cdf1, q, 1e-10) << "q=" << q;
  }
}

TEST(PredictiveQuantile, IdenticalComponentsEqualSingleGaussian) {
  // Three copies of N(1.5, 2): the 0.975 quantile is 1.5 + sqrt(2) * 1.959963985.
  Predictive p = mixture({{1.5}, {1.5}, {1.5}}, {{2}, {2}, {2}});
  EXPECT_NEAR(predictive_quantile(p, 0.975)[0].item<double>(),
              1.5 + std::sqrt(2.0) * 1.959963984540054, 1e-10);
}

TEST(PredictiveQuantile, ZeroWeightComponentIsIgnored) {
  // 0 * N(100, 1) + 1 * N(0, 1): the 0.95 quantile is z_0.95.
  Predictive p = mixture({{100}, {0}}, {{1}, {1}}, {0.0, 1.0});
  EXPECT_NEAR(predictive_quantile(p, 0.95)[0].item<double>(), 1.6448536269514722, 1e-10);
}

TEST(Coverage, StandardNormalAtKnownZScores) {
  // 90% central interval of N(0, 1) is [-1.644854, 1.644854]:
  //   y = 0, 1.0, -1.6 inside; 2.0, -1.7 outside -> 3/5 = 0.6
  Predictive p = gaussian({0, 0, 0, 0, 0}, {1, 1, 1, 1, 1});
  torch::Tensor y = vec({0.0, 1.0, -1.6, 2.0, -1.7});
  EXPECT_DOUBLE_EQ(coverage(p, y, 0.9), 0.6);
  // 99% interval is +-2.575829: everything inside.
  EXPECT_DOUBLE_EQ(coverage(p, y, 0.99), 1.0);
  // 50% interval is +-0.674490: only y = 0 inside.
  EXPECT_DOUBLE_EQ(coverage(p, y, 0.5), 0.2);
}

TEST(Coverage, ShiftedAndScaled) {
  // N(10, 4): 90% interval 10 +- 2 * 1.644854 = [6.710293, 13.289707].
  //   13.2 = 10 + 2*1.6 inside, 6.6 = 10 - 2*1.7 outside -> 1/2
  Predictive p = gaussian({10, 10}, {4, 4});
  EXPECT_DOUBLE_EQ(coverage(p, vec({13.2, 6.6}), 0.9), 0.5);
}

TEST(Coverage, BimodalMixture) {
  // 0.5 N(-5, 1) + 0.5 N(5, 1): CDF(0) = 0.5, CDF(-5) ~ 0.25, CDF(-8) ~ 0.5 Phi(-3) = 0.00067,
  // CDF(7.5) ~ 0.5 + 0.5 Phi(2.5) = 0.9969. 90% interval is between the 0.05 and 0.95
  // quantiles, so 0, -5 inside; -8 and 7.5 outside -> 2/4.
  Predictive p = mixture({{-5, -5, -5, -5}, {5, 5, 5, 5}}, {{1, 1, 1, 1}, {1, 1, 1, 1}});
  EXPECT_DOUBLE_EQ(coverage(p, vec({0, -5, -8, 7.5}), 0.9), 0.5);
}

TEST(RegressionMetrics, StandardMetricsKeysAndValues) {
  auto m = standard_metrics(gaussian({1, 2, 3}, {1, 4, 0.25}), vec({2, 0, 3}));
  ASSERT_EQ(m.size(), 3u);
  EXPECT_NEAR(m.at("rmse"), 1.2909944487358056, 1e-12);
  EXPECT_NEAR(m.at("nll"), 1.252271866538006, 1e-12);
  // z-scores of the errors: 1/1 = 1, 2/2 = 1, 0 -> all inside +-1.645
  EXPECT_DOUBLE_EQ(m.at("coverage_90"), 1.0);
}

TEST(RegressionMetrics, RejectsBadInputs) {
  Predictive p = gaussian({1, 2, 3}, {1, 4, 0.25});
  expect_invalid([&] { rmse(p, vec({1, 2})); }, "targets have shape [2], expected [3]");
  expect_invalid([&] { regression_nll(p, vec({1, 2, 3, 4})); }, "expected [3]");
  expect_invalid([&] { coverage(p, vec({1, 2, 3}), 0.0); }, "level must be in (0, 1)");
  expect_invalid([&] { coverage(p, vec({1, 2, 3}), 1.0); }, "level must be in (0, 1)");
  expect_invalid([&] { coverage(p, vec({1, 2, 3}), 1.5); }, "got 1.5");
  expect_invalid([&] { predictive_quantile(p, 0.0); }, "quantile level q must be in (0, 1)");
  expect_invalid([&] { predictive_quantile(p, 1.0); }, "quantile level q");
  expect_invalid([&] { regression_nll(p, vec({1, std::nan(""), 3})); }, "targets contain");

  Predictive zero_var = gaussian({0, 0}, {1, 0});
  expect_invalid([&] { regression_nll(zero_var, vec({0, 0})); }, "variances must be positive");

  Predictive cls;
  cls.task = Task::Classification;
  cls.probs = f64({0.5, 0.5}, {1, 2});
  auto y = at::zeros({1}, at::kDouble);
  expect_invalid([&] { rmse(cls, y); }, "needs a regression predictive");
  expect_invalid([&] { regression_nll(cls, y); }, "got a classification one");
  expect_invalid([&] { coverage(cls, y, 0.9); }, "needs a regression predictive");
  expect_invalid([&] { predictive_quantile(cls, 0.9); }, "needs a regression predictive");

  Predictive mix = mixture({{0, 1}, {2, 3}}, {{1, 1}, {1, 1}});
  mix.sample_var = f64({1, 1, 1}, {1, 3});
  expect_invalid([&] { regression_nll(mix, vec({0, 0})); }, "sample_var [1, 3]");
  mix = mixture({{0, 1}, {2, 3}}, {{1, 1}, {1, 1}});
  mix.weights = vec({0.2, 0.2});
  expect_invalid([&] { regression_nll(mix, vec({0, 0})); }, "weights sum to 0.4");
  mix.weights = vec({1.0});
  expect_invalid([&] { coverage(mix, vec({0, 0}), 0.9); }, "weights have shape [1], expected [2]");
  mix.weights = vec({1.5, -0.5});
  expect_invalid([&] { predictive_quantile(mix, 0.5); }, "non-negative");

  Predictive no_var;
  no_var.mean = vec({1.0});
  expect_invalid([&] { regression_nll(no_var, vec({1.0})); }, "var undefined");
  EXPECT_NO_THROW(rmse(no_var, vec({1.0})));  // rmse needs only the mean
}

}  // namespace
}  // namespace credence
