// Pool-based active learning: the queries are the acquisition's best, never repeated.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <set>

#include "credence/credence.h"
#include "credence/sequential/acquisition.h"
#include "credence/sequential/active.h"

namespace credence {

TEST(ActiveLearning, SelectsTheTopScoresOfTheCandidates) {
  auto pool = load_data("synthetic:moons?n=200&seed=4").fit;
  FitRequest req;
  req.data.fit = pool.subset(at::arange(20));
  req.model = "mlp:16";
  req.method = "ensemble:members=3";
  req.train.epochs = 30;
  req.train.quiet = true;
  auto fitted = fit(req);
  auto candidates = at::arange(20, 200);
  auto picked = select_queries(fitted, pool, candidates, "bald", 5, 9);
  auto score = active_score(fitted.predict(pool.subset(candidates)), "bald");
  auto kth = std::get<0>(score.topk(5)).min().item<double>();
  ASSERT_EQ(picked.numel(), 5);
  for (int64_t i = 0; i < 5; ++i) {
    int64_t row = picked[i].item<int64_t>();
    EXPECT_GE(row, 20);
    EXPECT_GE(score[row - 20].item<double>(), kth - 1e-12);
  }
}

TEST(ActiveLearning, GrowsTheLabelledSetToTheBudget) {
  auto pool = load_data("synthetic:moons?n=300&seed=1").fit;
  auto test = load_data("synthetic:moons?n=200&seed=2").fit;
  ActiveLearningOptions opts;
  opts.model = "mlp:16";
  opts.method = "mcdropout";
  opts.train.epochs = 20;
  opts.acquisition = "entropy";
  opts.initial = 6;
  opts.batch = 5;
  opts.budget = 21;
  auto rounds = run_active_learning(pool, test, opts);
  ASSERT_EQ(rounds.size(), 4u);
  std::vector<int64_t> labels;
  std::set<int64_t> seen;
  int64_t class_one = 0;
  for (const auto& r : rounds) {
    labels.push_back(r.labels);
    EXPECT_TRUE(r.metrics.count("accuracy"));
    for (auto row : r.added) EXPECT_TRUE(seen.insert(row).second) << "row " << row << " labelled twice";
  }
  for (auto row : rounds[0].added) class_one += pool.y[row].item<int64_t>();
  EXPECT_EQ(class_one, 3) << "the initial rows are balanced over the two classes";
  EXPECT_EQ(labels, (std::vector<int64_t>{6, 11, 16, 21}));
  EXPECT_EQ(seen.size(), 21u);
  opts.budget = 400;
  EXPECT_THROW(run_active_learning(pool, test, opts), InvalidArgument);
}

}  // namespace credence
