// AUROC (mid-ranks), AUPR (average precision) and FPR at a TPR, with ties, by hand.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "credence/eval/ood.h"
#include "expect_invalid.h"
#include "tensors.h"

namespace credence {
namespace {

torch::Tensor flags(std::initializer_list<int64_t> v) {
  return at::tensor(at::ArrayRef<int64_t>(v), at::kLong);
}

// out scores {.9, .8, .1}, in scores {.8, .3}; one tie across the classes at .8.
const auto kScores = [] { return f64({0.9, 0.8, 0.8, 0.3, 0.1}); };
const auto kOut = [] { return flags({1, 1, 0, 0, 1}); };

TEST(Ood, AurocCountsTiesAsHalf) {
  // Pairs (out, in): .9 beats both (2), .8 ties .8 and beats .3 (1.5), .1 beats none: 3.5 / 6.
  EXPECT_NEAR(auroc(kScores(), kOut()), 3.5 / 6, 1e-12);
  // The order of the data does not matter.
  auto perm = flags({4, 2, 0, 3, 1});
  EXPECT_NEAR(auroc(kScores().index_select(0, perm), kOut().index_select(0, perm)), 3.5 / 6, 1e-12);
  EXPECT_NEAR(auroc(f64({1, 1, 1, 1}), flags({0, 1, 0, 1})), 0.5, 1e-12);
  EXPECT_NEAR(auroc(f64({0.1, 0.2, 0.9}), flags({0, 0, 1})), 1.0, 1e-12);
  EXPECT_NEAR(auroc(f64({0.9, 0.2, 0.1}), flags({0, 0, 1})), 0.0, 1e-12);
}

TEST(Ood, AuprIsAveragePrecisionOverDistinctThresholds) {
  // Thresholds .9: tp 1 fp 0 (P 1); .8: tp 2 fp 1 (P 2/3); .3: no new positive; .1: tp 3 fp 2 (P 3/5).
  // AP = (1 + 2/3 + 3/5) / 3 = 34/45.
  EXPECT_NEAR(aupr(kScores(), kOut()), 34.0 / 45, 1e-12);
  EXPECT_NEAR(aupr(f64({0.1, 0.2, 0.9}), flags({0, 0, 1})), 1.0, 1e-12);
  // All tied: precision is the positive rate.
  EXPECT_NEAR(aupr(f64({1, 1, 1, 1}), flags({0, 1, 0, 0})), 0.25, 1e-12);
}

TEST(Ood, FprAtTpr) {
  // 95% of 3 positives needs all 3: the lowest threshold, fp 2 of 2.
  EXPECT_NEAR(fpr_at_tpr(kScores(), kOut()), 1.0, 1e-12);
  // 60% needs 2: threshold .8 takes the tied in-example too: 1 / 2.
  EXPECT_NEAR(fpr_at_tpr(kScores(), kOut(), 0.6), 0.5, 1e-12);
  EXPECT_NEAR(fpr_at_tpr(kScores(), kOut(), 1.0 / 3), 0.0, 1e-12);
  // 19 of 20 reaches 95% exactly.
  auto s = at::arange(21, at::kDouble);  // in: score 0; out: 1..20
  auto out = (s > 0).to(at::kLong);
  s[1] = -1.0;  // one positive below the negative
  EXPECT_NEAR(fpr_at_tpr(s, out), 0.0, 1e-12);
}

TEST(Ood, MetricsFromPredictives) {
  Predictive in, out;
  in.task = out.task = Task::Classification;
  in.probs = at::tensor({0.9, 0.1, 0.8, 0.2}, at::kDouble).reshape({2, 2});
  out.probs = at::tensor({0.5, 0.5, 0.6, 0.4}, at::kDouble).reshape({2, 2});
  for (const char* score : {"entropy", "max_prob"}) {
    auto m = ood_metrics(in, out, score);
    EXPECT_NEAR(m.at("auroc"), 1.0, 1e-12) << score;
    EXPECT_NEAR(m.at("aupr"), 1.0, 1e-12) << score;
    EXPECT_NEAR(m.at("fpr95"), 0.0, 1e-12) << score;
  }
}

TEST(Ood, BadInputs) {
  expect_invalid([] { auroc(f64({1, 2}), flags({1, 1})); }, "needs both");
  expect_invalid([] { auroc(f64({1, 2}), flags({1})); }, "is_out has shape [1]");
  expect_invalid([] { aupr(f64({1, 2}), f64({0, 1})); }, "bool or 0/1 integers");
  expect_invalid([] { aupr(f64({1, 2}), flags({0, 2})); }, "only 0 and 1");
  expect_invalid([] { fpr_at_tpr(f64({1, 2}), flags({0, 1}), 0.0); }, "tpr must be in (0, 1]");
  expect_invalid([] { auroc(f64({1, NAN}), flags({0, 1})); }, "NaN");
}

}  // namespace
}  // namespace credence
