// Split conformal (APS, RAPS, normalized residuals) and credible sets, by hand and on
// simulated calibrated data.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>

#include "credence/eval/conformal.h"
#include "expect_invalid.h"
#include "tensors.h"

namespace credence {
namespace {

TEST(Conformal, FiniteSampleQuantile) {
  auto s = at::arange(1, 11, at::kDouble) / 10.0;                             // .1 .. 1.0, n = 10
  EXPECT_DOUBLE_EQ(conformal_quantile(s, 0.8), 0.9);                          // ceil(11 * .8) = 9th
  EXPECT_DOUBLE_EQ(conformal_quantile(s, 0.9), 1.0);                          // ceil(9.9) = 10th
  EXPECT_TRUE(std::isinf(conformal_quantile(s, 0.95)));                       // ceil(10.45) = 11 > n
  EXPECT_DOUBLE_EQ(conformal_quantile(f64({0.3, 0.1, 0.4, 0.2}), 0.6), 0.3);  // 3rd of 4
  // 25 * .56 is 14.000000000000002 in floating point; the rank is 14, not 15.
  EXPECT_DOUBLE_EQ(conformal_quantile(at::arange(1, 25, at::kDouble), 0.56), 14.0);
}

TEST(Conformal, ApsAndRapsScores) {
  // [.2, .5, .3] sorted: class 1 (.5), class 2 (.8), class 0 (1.0).
  auto s = set_scores(probs({0.2, 0.5, 0.3}, 1), aps());
  EXPECT_NEAR(s[0][0].item<double>(), 1.0, 1e-12);
  EXPECT_NEAR(s[0][1].item<double>(), 0.5, 1e-12);
  EXPECT_NEAR(s[0][2].item<double>(), 0.8, 1e-12);
  // RAPS lambda .1, k_reg 1: ranks 1, 2, 3 add 0, .1, .2.
  auto r = set_scores(probs({0.2, 0.5, 0.3}, 1), raps(0.1, 1));
  EXPECT_NEAR(r[0][0].item<double>(), 1.2, 1e-12);
  EXPECT_NEAR(r[0][1].item<double>(), 0.5, 1e-12);
  EXPECT_NEAR(r[0][2].item<double>(), 0.9, 1e-12);
  // Tied probabilities rank by class index.
  auto t = set_scores(probs({0.4, 0.4, 0.2}, 1), aps());
  EXPECT_NEAR(t[0][0].item<double>(), 0.4, 1e-12);
  EXPECT_NEAR(t[0][1].item<double>(), 0.8, 1e-12);
}

TEST(Conformal, ApsSetsByHand) {
  // Calibration: four [.2, .5, .3] labelled 1, 2, 0, 1 -> scores .5, .8, 1.0, .5;
  // level .6 -> 3rd smallest of 4 = .8.
  auto cal = probs({0.2, 0.5, 0.3, 0.2, 0.5, 0.3, 0.2, 0.5, 0.3, 0.2, 0.5, 0.3}, 4);
  auto test = probs({0.2, 0.5, 0.3, 0.6, 0.3, 0.1}, 2);
  auto sets = conformal_sets(cal, labels({1, 2, 0, 1}), test, 0.6, aps());
  EXPECT_NEAR(sets.threshold, 0.8, 1e-12);
  // Test 0: scores [1.0, .5, .8] -> {1, 2}; test 1: [.6, .9, 1.0] -> {0}.
  auto m = sets.member.to(at::kLong);
  EXPECT_TRUE(at::equal(m, labels({0, 1, 1, 1, 0, 0}).reshape({2, 3})));
  auto q = evaluate_sets(sets, labels({2, 1}));
  EXPECT_NEAR(q.coverage, 0.5, 1e-12);
  EXPECT_NEAR(q.size, 1.5, 1e-12);
}

TEST(Conformal, ThresholdSetsByHandAreTheDefault) {
  // LAC scores 1 - p(y). Calibration [.2, .5, .3] labelled 1, 2, 0, 1 -> .5, .7, .8, .5;
  // level .6 -> 3rd smallest of 4 = .7.
  auto cal = probs({0.2, 0.5, 0.3, 0.2, 0.5, 0.3, 0.2, 0.5, 0.3, 0.2, 0.5, 0.3}, 4);
  auto test = probs({0.2, 0.5, 0.3, 0.6, 0.3, 0.1}, 2);
  auto sets = conformal_sets(cal, labels({1, 2, 0, 1}), test, 0.6);
  EXPECT_NEAR(sets.threshold, 0.7, 1e-12);
  // Test 0: scores [.8, .5, .7] -> {1, 2}; test 1: [.4, .7, .9] -> {0, 1}.
  EXPECT_TRUE(at::equal(sets.member.to(at::kLong), labels({0, 1, 1, 1, 1, 0}).reshape({2, 3})));
  auto q = evaluate_sets(sets, labels({2, 1}));
  EXPECT_NEAR(q.coverage, 1.0, 1e-12);
  EXPECT_NEAR(q.size, 2.0, 1e-12);
  EXPECT_TRUE(at::allclose(set_scores(test, lac()), 1.0 - test.probs));
}

TEST(Conformal, CredibleSetsAreTheSmallestReachingTheLevel) {
  auto p = probs({0.2, 0.5, 0.3, 0.6, 0.3, 0.1}, 2);
  // .8: {1, 2} (.5 + .3 reaches .8 exactly) and {0, 1}.
  auto s = credible_sets(p, 0.8);
  EXPECT_TRUE(at::equal(s.member.to(at::kLong), labels({0, 1, 1, 1, 1, 0}).reshape({2, 3})));
  EXPECT_NEAR(evaluate_sets(s, labels({0, 1})).coverage, 0.5, 1e-12);
  // .95 needs all of the second example's classes.
  EXPECT_NEAR(evaluate_sets(credible_sets(p, 0.95), labels({0, 2})).size, 3.0, 1e-12);
}

TEST(Conformal, NormalizedResidualIntervalsByHand) {
  // Calibration N(0, 4) with y 1, -2, 4, .5 -> |y| / 2 = .5, 1, 2, .25; level .6 -> 3rd = 1.
  Predictive cal;
  cal.mean = at::zeros({4}, at::kDouble);
  cal.var = at::full({4}, 4.0, at::kDouble);
  Predictive test;
  test.mean = f64({10});
  test.var = f64({9});
  auto iv = conformal_intervals(cal, f64({1, -2, 4, 0.5}), test, 0.6);
  EXPECT_NEAR(iv.threshold, 1.0, 1e-12);
  EXPECT_NEAR(iv.lower[0].item<double>(), 7.0, 1e-12);
  EXPECT_NEAR(iv.upper[0].item<double>(), 13.0, 1e-12);
  auto q = evaluate_intervals(iv, f64({12}));
  EXPECT_EQ(q.coverage, 1.0);
  EXPECT_NEAR(q.size, 6.0, 1e-12);
  // The credible interval of N(10, 9) at .9: 10 +- 1.644853627 * 3.
  auto cr = credible_intervals(test, 0.9);
  EXPECT_NEAR(cr.upper[0].item<double>(), 10 + 3 * 1.6448536269514722, 1e-9);
  EXPECT_NEAR(evaluate_intervals(cr, f64({15})).coverage, 0.0, 1e-12);
}

TEST(Conformal, CoverageOnSimulatedData) {
  // Labels drawn from the predicted probabilities: conformal sets cover about 90%;
  // so do credible sets, since the model is calibrated by construction.
  auto gen = at::make_generator<at::CPUGeneratorImpl>(7);
  const int64_t n_cal = 2000, n_test = 20000, C = 5;
  auto draw = [&](int64_t n) {
    auto logits = 2.0 * at::randn({n, C}, gen, at::kDouble);
    Predictive p;
    p.task = Task::Classification;
    p.probs = at::softmax(logits, 1);
    return std::make_pair(p, at::multinomial(p.probs, 1, false, gen).squeeze(1));
  };
  auto [cal, y_cal] = draw(n_cal);
  auto [test, y_test] = draw(n_test);
  for (auto score : {lac(), aps(), raps(0.01, 2)}) {
    auto q = evaluate_sets(conformal_sets(cal, y_cal, test, 0.9, score), y_test);
    EXPECT_GT(q.coverage, 0.88);
    EXPECT_LT(q.coverage, 0.92);
    EXPECT_GT(q.size, 1.0);
    EXPECT_LT(q.size, C);
  }
  auto credible = evaluate_sets(credible_sets(test, 0.9), y_test);
  EXPECT_GT(credible.coverage, 0.88);
  // Regression: y ~ N(mu, sd^2) with a model whose std is 2x too small: credible intervals
  // under-cover, conformal ones are rescaled to about 90%.
  auto mu = at::randn({n_cal + n_test}, gen, at::kDouble);
  auto sd = at::rand({n_cal + n_test}, gen, at::kDouble) + 0.5;
  auto y = mu + sd * at::randn({n_cal + n_test}, gen, at::kDouble);
  Predictive reg;
  reg.mean = mu;
  reg.var = (sd / 2).pow(2);
  auto part = [&](int64_t a, int64_t b) {
    Predictive p;
    p.mean = reg.mean.slice(0, a, b);
    p.var = reg.var.slice(0, a, b);
    return p;
  };
  auto rcal = part(0, n_cal), rtest = part(n_cal, n_cal + n_test);
  auto yt = y.slice(0, n_cal);
  auto conf = evaluate_intervals(conformal_intervals(rcal, y.slice(0, 0, n_cal), rtest, 0.9), yt);
  EXPECT_GT(conf.coverage, 0.88);
  EXPECT_LT(conf.coverage, 0.92);
  EXPECT_LT(evaluate_intervals(credible_intervals(rtest, 0.9), yt).coverage, 0.7);
}

TEST(Conformal, BadInputs) {
  auto p = probs({0.5, 0.5}, 1);
  expect_invalid([&] { conformal_sets(p, labels({0}), p, 1.0); }, "nominal level must be in (0, 1)");
  expect_invalid([&] { set_scores(p, raps(-1, 0)); }, "lambda >= 0");
  expect_invalid([&] { conformal_sets(p, labels({0, 1}), p, 0.9); }, "labels have shape [2]");
  expect_invalid([&] { conformal_quantile(at::empty({0}, at::kDouble), 0.9); }, "expected [n], n >= 1");
  expect_invalid(
      [&] {
        conformal_sets(p, labels({0}), probs({0.2, 0.3, 0.5}, 1), 0.5);
      },
      "calibration has 2 classes, test has 3");
}

}  // namespace
}  // namespace credence
