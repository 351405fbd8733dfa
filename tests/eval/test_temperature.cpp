// Temperature scaling: the optimum worked out in closed form for a binary case.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>

#include "credence/eval/metrics.h"
#include "credence/eval/temperature.h"
#include "expect_invalid.h"

namespace credence {
namespace {

// Four examples all predicted [.9, .1], three labelled 0. Scaled probability of class 0 is
// sigmoid(ln 9 / T); the NLL is minimal when it equals the 3/4 frequency: ln 9 / T = ln 3, T = 2.
Predictive overconfident() {
  Predictive p;
  p.task = Task::Classification;
  p.probs = at::tensor({0.9, 0.1}, at::kDouble).repeat({4, 1});
  return p;
}
torch::Tensor labels() { return at::tensor({0, 0, 0, 1}, at::kLong); }

TEST(Temperature, FitsTheClosedFormOptimum) {
  auto fit = fit_temperature(overconfident(), labels());
  EXPECT_NEAR(fit.temperature, 2.0, 1e-6);
  // Before: -(.75 ln .9 + .25 ln .1); after: the entropy of (.75, .25).
  EXPECT_NEAR(fit.nll_before, -(0.75 * std::log(0.9) + 0.25 * std::log(0.1)), 1e-12);
  EXPECT_NEAR(fit.nll_after, -(0.75 * std::log(0.75) + 0.25 * std::log(0.25)), 1e-10);
}

TEST(Temperature, UnderconfidentGetsTemperatureBelowOne) {
  // [.6, .4] with all labels 0 and one 1 of 10: target .9 -> T = ln 1.5 / ln 9 = .18453.
  Predictive p;
  p.task = Task::Classification;
  p.probs = at::tensor({0.6, 0.4}, at::kDouble).repeat({10, 1});
  auto y = at::zeros({10}, at::kLong);
  y[9] = 1;
  EXPECT_NEAR(fit_temperature(p, y).temperature, std::log(1.5) / std::log(9.0), 1e-6);
}

TEST(Temperature, ApplyRescalesLogProbabilities) {
  // [.9, .1] at T = 2: sqrt(.9) : sqrt(.1) = 3 : 1 -> [.75, .25].
  Predictive q = apply_temperature(overconfident(), 2.0);
  EXPECT_NEAR(q.probs[0][0].item<double>(), 0.75, 1e-12);
  EXPECT_NEAR(q.probs[3][1].item<double>(), 0.25, 1e-12);
  EXPECT_NEAR(classification_nll(q, labels()), -(0.75 * std::log(0.75) + 0.25 * std::log(0.25)), 1e-12);
  // Samples are averaged first: .5 [1, 0] + .5 [.8, .2] = [.9, .1].
  Predictive s;
  s.task = Task::Classification;
  s.sample_probs = at::tensor({1.0, 0.0, 0.8, 0.2}, at::kDouble).reshape({2, 1, 2});
  Predictive t = apply_temperature(s, 2.0);
  EXPECT_FALSE(t.sample_probs.defined());
  EXPECT_NEAR(t.probs[0][0].item<double>(), 0.75, 1e-12);
}

TEST(Temperature, BadInputs) {
  expect_invalid([] { apply_temperature(overconfident(), 0.0); }, "temperature must be positive");
  expect_invalid(
      [] {
        fit_temperature(overconfident(), at::tensor({0, 1}, at::kLong));
      },
      "labels have shape [2]");
}

}  // namespace
}  // namespace credence
