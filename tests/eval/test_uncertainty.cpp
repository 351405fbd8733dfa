// Entropy and variance decompositions, and the OOD scores built on them, by hand.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>

#include "credence/eval/uncertainty.h"
#include "expect_invalid.h"
#include "tensors.h"

namespace credence {
namespace {

double h2(double a) { return -(a * std::log(a) + (1 - a) * std::log(1 - a)); }

Predictive samples(std::initializer_list<double> v, std::vector<int64_t> shape) {
  Predictive p;
  p.task = Task::Classification;
  p.sample_probs = f64(v, shape);
  return p;
}

TEST(Uncertainty, DisagreeingSamplesAreAllEpistemic) {
  // Samples [1, 0] and [0, 1]: mean [.5, .5], total ln 2, each sample certain (0 log 0 = 0).
  auto u = decompose_uncertainty(samples({1, 0, 0, 1}, {2, 1, 2}));
  EXPECT_NEAR(u.total[0].item<double>(), std::log(2.0), 1e-12);
  EXPECT_NEAR(u.aleatoric[0].item<double>(), 0.0, 1e-12);
  EXPECT_NEAR(u.epistemic[0].item<double>(), std::log(2.0), 1e-12);
}

TEST(Uncertainty, AgreeingSamplesAreAllAleatoric) {
  auto u = decompose_uncertainty(samples({0.5, 0.5, 0.5, 0.5}, {2, 1, 2}));
  EXPECT_NEAR(u.aleatoric[0].item<double>(), std::log(2.0), 1e-12);
  EXPECT_NEAR(u.epistemic[0].item<double>(), 0.0, 1e-12);
}

TEST(Uncertainty, WeightedSamples) {
  // .25 [.8, .2] + .75 [.4, .6] = [.5, .5]: total ln 2, aleatoric .25 H(.8) + .75 H(.4).
  auto p = samples({0.8, 0.2, 0.4, 0.6}, {2, 1, 2});
  p.weights = f64({0.25, 0.75}, {2});
  auto u = decompose_uncertainty(p);
  double aleatoric = 0.25 * h2(0.8) + 0.75 * h2(0.4);  // .629859...
  EXPECT_NEAR(u.total[0].item<double>(), std::log(2.0), 1e-12);
  EXPECT_NEAR(u.aleatoric[0].item<double>(), aleatoric, 1e-12);
  EXPECT_NEAR(u.epistemic[0].item<double>(), std::log(2.0) - aleatoric, 1e-12);
  EXPECT_NEAR(uncertainty_score(p, "mutual_info")[0].item<double>(), std::log(2.0) - aleatoric, 1e-12);
}

TEST(Uncertainty, PointPredictiveHasNoEpistemicPart) {
  Predictive p;
  p.task = Task::Classification;
  p.probs = f64({0.7, 0.3, 0.2, 0.8}, {2, 2});
  auto u = decompose_uncertainty(p);
  EXPECT_NEAR(u.total[0].item<double>(), h2(0.7), 1e-12);
  EXPECT_NEAR(u.aleatoric[1].item<double>(), h2(0.2), 1e-12);
  EXPECT_EQ(u.epistemic.abs().sum().item<double>(), 0.0);
  auto mp = uncertainty_score(p, "max_prob");
  EXPECT_NEAR(mp[0].item<double>(), 0.3, 1e-12);
  EXPECT_NEAR(mp[1].item<double>(), 0.2, 1e-12);
  EXPECT_NEAR(uncertainty_score(p, "entropy")[1].item<double>(), h2(0.2), 1e-12);
}

TEST(Uncertainty, RegressionLawOfTotalVariance) {
  // Point 0: means 1, 3 and variances 1, 3 -> aleatoric 2, epistemic 1, total 3.
  // Point 1: means 2, 2 and variances 1, 1 -> aleatoric 1, epistemic 0.
  Predictive p;
  p.sample_mean = f64({1, 2, 3, 2}, {2, 2});
  p.sample_var = f64({1, 1, 3, 1}, {2, 2});
  auto u = decompose_uncertainty(p);
  EXPECT_NEAR(u.aleatoric[0].item<double>(), 2.0, 1e-12);
  EXPECT_NEAR(u.epistemic[0].item<double>(), 1.0, 1e-12);
  EXPECT_NEAR(u.total[0].item<double>(), 3.0, 1e-12);
  EXPECT_NEAR(u.aleatoric[1].item<double>(), 1.0, 1e-12);
  EXPECT_NEAR(u.epistemic[1].item<double>(), 0.0, 1e-12);
  // Weights .75 / .25 at point 0: mean 1.5, aleatoric 1.5, epistemic .75 (.25) + .25 (2.25) = .75.
  p.weights = f64({0.75, 0.25}, {2});
  u = decompose_uncertainty(p);
  EXPECT_NEAR(u.aleatoric[0].item<double>(), 1.5, 1e-12);
  EXPECT_NEAR(u.epistemic[0].item<double>(), 0.75, 1e-12);
}

TEST(Uncertainty, BadInputs) {
  auto p = samples({0.5, 0.5, 0.5, 0.5}, {2, 1, 2});
  expect_invalid([&] { uncertainty_score(p, "variance"); }, "unknown score 'variance'");
  Predictive reg;
  reg.mean = f64({0}, {1});
  reg.var = f64({1}, {1});
  expect_invalid([&] { uncertainty_score(reg, "entropy"); }, "needs a classification");
  p.weights = f64({0.5, 0.6}, {2});
  expect_invalid([&] { decompose_uncertainty(p); }, "weights sum to");
}

}  // namespace
}  // namespace credence
