// The ask/tell optimization loop: resumable, seeded, in the box, better than random search.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

#include "credence/core/error.h"
#include "credence/sequential/bayesopt.h"
#include "credence/sequential/objectives.h"

namespace credence {
namespace {

BayesOptOptions options_for(const Objective& o, const std::string& method, const std::string& acquisition) {
  BayesOptOptions opts;
  opts.lower = o.lower;
  opts.upper = o.upper;
  opts.method = method;
  opts.model = "mlp:16";
  opts.steps = 100;
  opts.acquisition = acquisition;
  opts.initial = 5;
  opts.seed = 3;
  return opts;
}

void step(BayesOpt& bo, const Objective& o, int64_t k = 1) {
  for (const auto& x : bo.suggest(k)) bo.observe(x, o.value(x));
}

// The best value after `evaluations` steps of a fresh loop.
double best_after(const Objective& o, const BayesOptOptions& opts, int evaluations) {
  BayesOpt bo(opts);
  while (bo.size() < evaluations) step(bo, o);
  return bo.best_value();
}

}  // namespace

TEST(BayesOpt, ResumedFromItsStateContinuesExactly) {
  auto o = make_objective("branin");
  for (const std::string method : {"gp", "ensemble:members=2"})
    for (const std::string acq : {"ei", "thompson"}) {
      auto opts = options_for(o, method, acq);
      BayesOpt straight(opts);
      for (int i = 0; i < 9; ++i) step(straight, o);
      BayesOpt first(opts);
      for (int i = 0; i < 6; ++i) step(first, o);
      // Through text, as a file would carry it.
      auto resumed = BayesOpt::from_state(nlohmann::json::parse(first.state().dump()));
      for (int i = 0; i < 3; ++i) step(resumed, o);
      EXPECT_EQ(resumed.points(), straight.points()) << method << " " << acq;
      EXPECT_EQ(resumed.values(), straight.values()) << method << " " << acq;
    }
}

TEST(BayesOpt, GpExpectedImprovementBeatsRandomSearchOnBranin) {
  auto o = make_objective("branin");
  double bo = 0, random = 0;
  for (uint64_t seed : {1, 2, 3}) {
    auto opts = options_for(o, "gp", "ei");
    opts.seed = seed;
    bo += std::log10(best_after(o, opts, 25) - o.minimum) / 3;
    opts.acquisition = "random";
    random += std::log10(best_after(o, opts, 25) - o.minimum) / 3;
  }
  std::printf("mean log10 regret at 25 evaluations: GP-EI %.2f, random %.2f\n", bo, random);
  EXPECT_LT(bo, random - 1.0) << "mean log10 regret: GP-EI " << bo << ", random " << random;
}

TEST(BayesOpt, BatchesAreSpreadAndInTheBox) {
  auto o = make_objective("hartmann6");
  auto opts = options_for(o, "gp", "ucb");
  BayesOpt bo(opts);
  step(bo, o, 5);  // the initial design in one batch
  EXPECT_EQ(bo.size(), 5);
  auto batch = bo.suggest(4);
  ASSERT_EQ(batch.size(), 4u);
  for (size_t i = 0; i < batch.size(); ++i) {
    for (size_t d = 0; d < 6; ++d) {
      EXPECT_GE(batch[i][d], 0.0);
      EXPECT_LE(batch[i][d], 1.0);
    }
    for (size_t j = 0; j < i; ++j) {
      double dist = 0;
      for (size_t d = 0; d < 6; ++d) dist += std::pow(batch[i][d] - batch[j][d], 2);
      EXPECT_GE(std::sqrt(dist), 0.05 * std::sqrt(6.0) - 1e-12);
    }
  }
}

TEST(BayesOpt, RefusesBadInput) {
  auto o = make_objective("branin");
  auto opts = options_for(o, "gp", "ei");
  BayesOpt bo(opts);
  EXPECT_THROW(bo.observe({20.0, 1.0}, 1.0), InvalidArgument);  // outside the box
  EXPECT_THROW(bo.observe({1.0}, 1.0), InvalidArgument);        // wrong dimension
  EXPECT_THROW(bo.observe({1.0, 1.0}, NAN), InvalidArgument);
  EXPECT_THROW(bo.best_value(), InvalidArgument);
  auto bad = opts;
  bad.acquisition = "pi";
  EXPECT_THROW(BayesOpt{bad}, InvalidArgument);
  bad = opts;
  bad.upper = {-6.0, 15.0};
  EXPECT_THROW(BayesOpt{bad}, InvalidArgument);
  bad = opts;
  bad.method = "nonsense";
  EXPECT_THROW(BayesOpt{bad}, InvalidArgument);
  EXPECT_THROW(BayesOpt::from_state(nlohmann::json{{"format", "other"}}), IoError);
}

}  // namespace credence
