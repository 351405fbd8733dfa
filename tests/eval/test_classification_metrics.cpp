// Classification metrics against values worked out by hand.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cmath>
#include <string>

#include "credence/core/error.h"
#include "credence/eval/metrics.h"
#include "expect_invalid.h"
#include "tensors.h"

namespace credence {
namespace {

TEST(ClassificationMetrics, AccuracyByHand) {
  // 3 of 4 argmaxes match the label (row 1 predicts 1, label 2): 3/4.
  EXPECT_DOUBLE_EQ(accuracy(four_by_three(), four_labels()), 0.75);
}

TEST(ClassificationMetrics, NllByHand) {
  // -(ln 0.7 + ln 0.3 + ln 0.5 + ln 0.4) / 4
  //   = -(-0.356674944 - 1.203972804 - 0.693147181 - 0.916290732) / 4
  //   = 3.170085661 / 4 = 0.792521415
  EXPECT_NEAR(classification_nll(four_by_three(), four_labels()), 0.7925214151746922, 1e-12);
}

TEST(ClassificationMetrics, NllClampsZeroProbability) {
  // p[y] = 0 is floored at 1e-12: -ln(1e-12) = 27.631021116, halved over 2 examples
  // together with an exact 1.0 (ln 1 = 0).
  Predictive p;
  p.task = Task::Classification;
  p.probs = f64({1.0, 0.0, 1.0, 0.0}, {2, 2});
  double nll = classification_nll(p, labels({1, 0}));
  EXPECT_TRUE(std::isfinite(nll));
  EXPECT_NEAR(nll, 27.631021115928547 / 2.0, 1e-6);
}

TEST(ClassificationMetrics, BrierByHand) {
  // row 0: (0.7-1)^2 + 0.2^2 + 0.1^2         = 0.09 + 0.04 + 0.01     = 0.14
  // row 1: 0.1^2 + 0.6^2 + (0.3-1)^2         = 0.01 + 0.36 + 0.49     = 0.86
  // row 2: 0.25^2 + 0.25^2 + (0.5-1)^2       = 0.0625 + 0.0625 + 0.25 = 0.375
  // row 3: 0.3^2 + (0.4-1)^2 + 0.3^2         = 0.09 + 0.36 + 0.09     = 0.54
  // mean: (0.14 + 0.86 + 0.375 + 0.54) / 4 = 1.915 / 4 = 0.47875
  EXPECT_NEAR(brier(four_by_three(), four_labels()), 0.47875, 1e-12);
}

TEST(ClassificationMetrics, EceByHandFiveBins) {
  // 5 right-closed bins (0,.2] (.2,.4] (.4,.6] (.6,.8] (.8,1]:
  //   (.2,.4]: row 3 (conf .4, boundary -> lower bin), acc 1,  conf .4   -> 1/4 * |1 - .4|    = .15
  //   (.4,.6]: rows 1 (conf .6, boundary) and 2 (.5), acc .5, conf .55   -> 2/4 * |.5 - .55|  = .025
  //   (.6,.8]: row 0, acc 1, conf .7                                     -> 1/4 * |1 - .7|    = .075
  // ECE = .15 + .025 + .075 = .25   (left-closed bins would give .35)
  EXPECT_NEAR(ece(four_by_three(), four_labels(), 5), 0.25, 1e-12);
}

TEST(ClassificationMetrics, EceOneBinIsGapOfMeans) {
  // One bin: |mean acc - mean conf| = |0.75 - (0.7+0.6+0.5+0.4)/4| = |0.75 - 0.55| = 0.2
  EXPECT_NEAR(ece(four_by_three(), four_labels(), 1), 0.2, 1e-12);
}

TEST(ClassificationMetrics, EceDefaultFifteenBins) {
  // 15 bins of width 1/15: .4 = 6/15 -> (5/15, 6/15]; .5 = 7.5/15 -> (7/15, 8/15];
  // .6 = 9/15 -> (8/15, 9/15]; .7 = 10.5/15 -> (10/15, 11/15].
  // Every example lands in its own bin, so ECE = mean |correct - conf|
  //   = (|1-.7| + |0-.6| + |1-.5| + |1-.4|) / 4 = (.3 + .6 + .5 + .6) / 4 = 0.5
  EXPECT_NEAR(ece(four_by_three(), four_labels()), 0.5, 1e-12);
}

TEST(ClassificationMetrics, EceConfidenceOneGoesInLastBin) {
  // conf exactly 1: right (ECE 0) and wrong (ECE 1) cases.
  Predictive p;
  p.task = Task::Classification;
  p.probs = f64({1.0, 0.0}, {1, 2});
  EXPECT_NEAR(ece(p, labels({0}), 10), 0.0, 1e-15);
  EXPECT_NEAR(ece(p, labels({1}), 10), 1.0, 1e-15);
}

TEST(ClassificationMetrics, PerfectPredictionsScoreZero) {
  Predictive p;
  p.task = Task::Classification;
  p.probs = f64({0, 1, 0, 1, 0, 0, 0, 0, 1}, {3, 3});
  auto y = labels({1, 0, 2});
  EXPECT_DOUBLE_EQ(accuracy(p, y), 1.0);
  EXPECT_NEAR(classification_nll(p, y), 0.0, 1e-15);
  EXPECT_NEAR(brier(p, y), 0.0, 1e-15);
  EXPECT_NEAR(ece(p, y), 0.0, 1e-15);
}

TEST(ClassificationMetrics, Float32ProbsAndInt32Labels) {
  Predictive p = four_by_three();
  p.probs = p.probs.to(at::kFloat);
  auto y = four_labels().to(at::kInt);
  EXPECT_DOUBLE_EQ(accuracy(p, y), 0.75);
  EXPECT_NEAR(brier(p, y), 0.47875, 1e-6);
  EXPECT_NEAR(classification_nll(p, y), 0.7925214151746922, 1e-6);
}

TEST(ClassificationMetrics, SampleProbsAveragedWhenProbsMissing) {
  // Two samples whose average is the 4x3 case: sample 0 = probs + d, sample 1 = probs - d.
  Predictive base = four_by_three();
  torch::Tensor d = f64({0.05, -0.05, 0, 0, 0.1, -0.1, 0, 0, 0, 0.1, -0.1, 0}, {4, 3});
  Predictive p;
  p.task = Task::Classification;
  p.sample_probs = at::stack({base.probs + d, base.probs - d});
  EXPECT_EQ(p.num_samples(), 2);
  EXPECT_DOUBLE_EQ(accuracy(p, four_labels()), 0.75);
  EXPECT_NEAR(brier(p, four_labels()), 0.47875, 1e-12);
}

TEST(ClassificationMetrics, StandardMetricsKeysAndValues) {
  auto m = standard_metrics(four_by_three(), four_labels(), 5);
  ASSERT_EQ(m.size(), 4u);
  EXPECT_DOUBLE_EQ(m.at("accuracy"), 0.75);
  EXPECT_NEAR(m.at("nll"), 0.7925214151746922, 1e-12);
  EXPECT_NEAR(m.at("ece"), 0.25, 1e-12);
  EXPECT_NEAR(m.at("brier"), 0.47875, 1e-12);
}

TEST(ClassificationMetrics, RejectsBadInputs) {
  Predictive p = four_by_three();
  expect_invalid([&] { accuracy(p, labels({0, 1, 2})); }, "labels have shape [3]");
  expect_invalid([&] { accuracy(p, labels({0, 1, 3, 0})); }, "label 3 is out of range [0, 3)");
  expect_invalid([&] { brier(p, labels({0, -1, 2, 0})); }, "label -1 is out of range");
  expect_invalid([&] { classification_nll(p, f64({0, 1, 2, 0}, {4})); }, "labels must be integers");
  expect_invalid([&] { ece(p, four_labels(), 0); }, "bins must be >= 1");
  expect_invalid([&] { ece(p, labels({0, 1, 2, 0}).reshape({2, 2}), 5); }, "labels have shape");

  Predictive reg;
  reg.mean = f64({0, 1}, {2});
  reg.var = f64({1, 1}, {2});
  expect_invalid([&] { accuracy(reg, labels({0, 1})); }, "needs a classification predictive");
  expect_invalid([&] { brier(reg, labels({0, 1})); }, "got a regression one");

  Predictive empty;
  empty.task = Task::Classification;
  expect_invalid([&] { accuracy(empty, labels({0})); }, "no class probabilities");

  Predictive nan = four_by_three();
  nan.probs[0][0] = std::nan("");
  expect_invalid([&] { accuracy(nan, four_labels()); }, "NaN");

  Predictive badw;
  badw.task = Task::Classification;
  badw.sample_probs = at::stack({p.probs, p.probs});
  badw.weights = f64({0.5, 0.6}, {2});
  expect_invalid([&] { accuracy(badw, four_labels()); }, "weights sum to");
}

TEST(ClassificationMetrics, ErrorsAreCredenceErrors) {
  EXPECT_THROW(accuracy(four_by_three(), labels({9, 0, 0, 0})), Error);
}

}  // namespace
}  // namespace credence
