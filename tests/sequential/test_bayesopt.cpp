// The ask/tell optimization loop: resumable, seeded, in the box, better than random search.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

#include <ATen/ATen.h>

#include "credence/core/error.h"
#include "credence/credence.h"
#include "credence/posterior/gp.h"
#include "credence/sequential/bayesopt.h"
#include "credence/sequential/objectives.h"
#include "../methods/problems.h"

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

TEST(BayesOpt, ThompsonDrawsAreDrawsOfThePosterior) {
  auto req = sine_request("gp:kernel=rbf", "synthetic:sine?n=12&seed=5");
  auto gp = fit(req);
  auto x = at::tensor({-2.0, 0.0, 0.3}, at::kDouble).view({3, 1});
  const int n = 20000;
  auto draws = thompson_draws(gp, x, n, 4);
  // Brute force: the argmax frequencies of independent draws from the closed-form latent Gaussian.
  auto [mean, cov] = dynamic_cast<const GpPosterior&>(*gp.posterior).latent(gp.standardizer.inputs(x));
  auto L = at::linalg_cholesky(cov + 1e-10 * at::eye(3, at::kDouble));
  auto gen = at::make_generator<at::CPUGeneratorImpl>(11);
  auto brute = mean + at::randn({n, 3}, gen, at::TensorOptions().dtype(at::kDouble)).mm(L.t());
  for (int64_t i = 0; i < 3; ++i) {
    double a = (draws.argmax(1) == i).to(at::kDouble).mean().item<double>();
    double b = (brute.argmax(1) == i).to(at::kDouble).mean().item<double>();
    EXPECT_NEAR(a, b, 0.015) << "candidate " << i;
  }
  // An ensemble: every draw is one member's function, each member about a third of the time.
  req.method = "ensemble:members=3";
  req.model = "mlp:8";
  req.train.epochs = 20;
  auto ens = fit(req);
  auto members = ens.predict(Dataset{x, at::zeros({3}, at::kDouble)}).sample_mean;
  auto ed = thompson_draws(ens, x, 3000, 5);
  std::vector<double> share(3, 0.0);
  for (int64_t i = 0; i < ed.size(0); ++i) {
    int64_t match = -1;
    for (int64_t m = 0; m < 3; ++m)
      if (at::allclose(ed[i], members[m], 1e-9, 1e-9)) match = m;
    ASSERT_GE(match, 0) << "draw " << i << " is no member's function";
    share[match] += 1.0 / ed.size(0);
  }
  for (double f : share) EXPECT_NEAR(f, 1.0 / 3.0, 0.04);
}

}  // namespace credence
