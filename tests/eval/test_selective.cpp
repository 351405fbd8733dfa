// Risk-coverage curve, AURC and accuracy at a coverage, with ties, by hand.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "credence/eval/selective.h"
#include "expect_invalid.h"
#include "tensors.h"

namespace credence {
namespace {

// Confidences .7, .6, .5, .4; only the .6 example is wrong.
Predictive four() { return four_by_three(); }

TEST(Selective, RiskCoverageCurve) {
  auto c = risk_coverage(four(), four_labels());
  EXPECT_EQ(c.coverage, (std::vector<double>{0.25, 0.5, 0.75, 1.0}));
  ASSERT_EQ(c.risk.size(), 4u);
  EXPECT_NEAR(c.risk[0], 0.0, 1e-12);
  EXPECT_NEAR(c.risk[1], 0.5, 1e-12);
  EXPECT_NEAR(c.risk[2], 1.0 / 3, 1e-12);
  EXPECT_NEAR(c.risk[3], 0.25, 1e-12);
  // AURC = (0 + 1/2 + 1/3 + 1/4) / 4 = 13/48.
  EXPECT_NEAR(aurc(four(), four_labels()), 13.0 / 48, 1e-12);
}

TEST(Selective, AccuracyAtCoverage) {
  EXPECT_NEAR(accuracy_at_coverage(four(), four_labels(), 0.5), 0.5, 1e-12);
  EXPECT_NEAR(accuracy_at_coverage(four(), four_labels(), 0.75), 2.0 / 3, 1e-12);
  EXPECT_NEAR(accuracy_at_coverage(four(), four_labels(), 1.0), 0.75, 1e-12);
  // 1.5 examples: the first, and half of the wrong one: 1 - .5 / 1.5.
  EXPECT_NEAR(accuracy_at_coverage(four(), four_labels(), 0.375), 2.0 / 3, 1e-12);
}

TEST(Selective, TiesMoveTogether) {
  // Confidences .9 (right), .9 (wrong), .5 (right): one point for the tied pair.
  auto p = probs({0.9, 0.1, 0.9, 0.1, 0.5, 0.5}, 3);
  auto y = labels({0, 1, 0});
  auto c = risk_coverage(p, y);
  ASSERT_EQ(c.coverage.size(), 2u);
  EXPECT_NEAR(c.coverage[0], 2.0 / 3, 1e-12);
  EXPECT_NEAR(c.risk[0], 0.5, 1e-12);
  EXPECT_NEAR(c.risk[1], 1.0 / 3, 1e-12);
  // AURC = 2/3 * 1/2 + 1/3 * 1/3 = 4/9, whichever tied example comes first.
  EXPECT_NEAR(aurc(c), 4.0 / 9, 1e-12);
  auto swapped = probs({0.9, 0.1, 0.9, 0.1, 0.5, 0.5}, 3);
  EXPECT_NEAR(aurc(swapped, labels({1, 0, 0})), 4.0 / 9, 1e-12);
  // A third of the examples cuts the tie in half: expected accuracy 1/2.
  EXPECT_NEAR(accuracy_at_coverage(p, y, 1.0 / 3), 0.5, 1e-12);
}

TEST(Selective, GenericLoss) {
  // Squared errors 4, 1, 0 with confidences -2, -1, -0.5: most confident first -> 0, 1, 4.
  auto c =
      risk_coverage(at::tensor({-2.0, -1.0, -0.5}, at::kDouble), at::tensor({4.0, 1.0, 0.0}, at::kDouble));
  EXPECT_NEAR(c.risk[0], 0.0, 1e-12);
  EXPECT_NEAR(c.risk[1], 0.5, 1e-12);
  EXPECT_NEAR(c.risk[2], 5.0 / 3, 1e-12);
}

TEST(Selective, BadInputs) {
  expect_invalid([] { accuracy_at_coverage(four(), four_labels(), 0.0); }, "coverage must be in (0, 1]");
  expect_invalid([] { risk_coverage(at::ones({3}, at::kDouble), at::ones({2}, at::kDouble)); },
                 "loss has shape [2]");
  expect_invalid([] { aurc(RiskCoverage{}); }, "empty");
}

}  // namespace
}  // namespace credence
