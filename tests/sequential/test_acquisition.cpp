// Acquisitions against closed forms, brute-force Monte Carlo and enumeration.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cmath>

#include "credence/core/error.h"
#include "credence/core/rng.h"
#include "credence/sequential/acquisition.h"

namespace credence {
namespace {

LatentObjective mixture(std::vector<double> means, std::vector<double> vars, std::vector<double> weights) {
  auto d = at::TensorOptions().dtype(at::kDouble);
  return {at::tensor(means, d).view({-1, 1}), at::tensor(vars, d).view({-1, 1}), at::tensor(weights, d)};
}

// Draws of f from the mixture (one candidate).
torch::Tensor draws(const LatentObjective& f, int64_t n, uint64_t seed) {
  auto d = at::TensorOptions().dtype(at::kDouble);
  auto gen = cpu_generator(seed);
  auto comp = at::multinomial(f.weights, n, true, gen);
  auto z = at::randn({n}, gen, d);
  return f.mean.select(1, 0).index_select(0, comp) + f.var.select(1, 0).sqrt().index_select(0, comp) * z;
}

}  // namespace

TEST(Acquisition, ExpectedImprovementIsTheClosedFormAndTheMonteCarloMean) {
  // One Gaussian: EI = (mu - b) Phi(z) + sd phi(z) by hand.
  auto g = mixture({0.3}, {0.25}, {1.0});
  const double mu = 0.3, sd = 0.5, b = 0.6, z = (mu - b) / sd;
  const double hand = (mu - b) * 0.5 * std::erfc(-z / std::sqrt(2.0)) + sd * std::exp(-z * z / 2) / std::sqrt(2 * M_PI);
  EXPECT_NEAR(expected_improvement(g, b).item<double>(), hand, 1e-12);
  // Mixtures: against the mean of max(f - b, 0) over a million draws (standard error < 1e-3).
  for (const auto& f : {g, mixture({-1.0, 0.5, 2.0}, {0.1, 1.0, 0.01}, {0.5, 0.3, 0.2}),
                        mixture({0.0, 1.0}, {0.0, 0.0}, {0.5, 0.5})}) {
    auto mc = (draws(f, 1000000, 7) - b).clamp_min(0).mean().item<double>();
    EXPECT_NEAR(expected_improvement(f, b).item<double>(), mc, 3e-3);
  }
}

TEST(Acquisition, UpperConfidenceBoundUsesTheMixtureMoments) {
  auto f = mixture({-1.0, 0.5, 2.0}, {0.1, 1.0, 0.01}, {0.5, 0.3, 0.2});
  auto x = draws(f, 1000000, 3);
  const double expected = x.mean().item<double>() + 2.0 * x.std().item<double>();
  EXPECT_NEAR(upper_confidence_bound(f, 4.0).item<double>(), expected, 1e-2);
  EXPECT_THROW(upper_confidence_bound(f, -1.0), InvalidArgument);
}

TEST(Acquisition, LatentObjectiveDropsTheNoise) {
  Predictive one;
  one.mean = at::tensor({1.0, 2.0}, at::kDouble);
  one.var = at::tensor({0.5, 0.2}, at::kDouble);
  auto f = latent_objective(one, 0.1);
  EXPECT_TRUE(at::allclose(f.var[0], at::tensor({0.4, 0.1}, at::kDouble)));
  Predictive many;  // three members: f has their mean and spread, whatever their noise
  many.sample_mean = at::tensor({1.0, 2.0, 3.0}, at::kDouble).view({3, 1});
  many.sample_var = at::full({3, 1}, 0.3, at::kDouble);
  many.mean = at::tensor({2.0}, at::kDouble);
  many.var = at::tensor({0.3 + 2.0 / 3.0}, at::kDouble);
  auto g = latent_objective(many, 0.3);
  EXPECT_NEAR(g.total_mean().item<double>(), 2.0, 1e-12);
  EXPECT_NEAR(g.total_var().item<double>(), 2.0 / 3.0, 1e-12);
  auto one_gaussian = mixture({2.0}, {2.0 / 3.0}, {1.0});
  EXPECT_NEAR(expected_improvement(g, 3.5).item<double>(), expected_improvement(one_gaussian, 3.5).item<double>(), 1e-12);
  EXPECT_GT(expected_improvement(g, 3.5).item<double>(), 0.0);  // above every member, still worth something
}

TEST(Acquisition, ClassificationScoresByEnumeration) {
  // Three members, two points, three classes; weights uneven.
  auto sp = at::tensor({0.7, 0.2, 0.1, 0.3, 0.3, 0.4,  //
                        0.1, 0.8, 0.1, 0.3, 0.4, 0.3,  //
                        0.6, 0.3, 0.1, 0.35, 0.3, 0.35},
                       at::kDouble)
                .view({3, 2, 3});
  auto w = at::tensor({0.5, 0.25, 0.25}, at::kDouble);
  Predictive p;
  p.task = Task::Classification;
  p.sample_probs = sp;
  p.weights = w;
  p.probs = (w.view({3, 1, 1}) * sp).sum(0);
  auto bald = active_score(p, "bald"), entropy = active_score(p, "entropy");
  auto variance = active_score(p, "variance"), margin = active_score(p, "margin");
  for (int n = 0; n < 2; ++n) {
    // Mutual information from the joint table p(member, class) = w_m p_m(c).
    double mi = 0, h = 0, var = 0;
    for (int c = 0; c < 3; ++c) {
      double pc = 0;
      for (int m = 0; m < 3; ++m) pc += w[m].item<double>() * sp[m][n][c].item<double>();
      h -= pc * std::log(pc);
      for (int m = 0; m < 3; ++m) {
        double joint = w[m].item<double>() * sp[m][n][c].item<double>();
        mi += joint * std::log(joint / (w[m].item<double>() * pc));
        var += w[m].item<double>() * std::pow(sp[m][n][c].item<double>() - pc, 2) / 3.0;
      }
    }
    EXPECT_NEAR(bald[n].item<double>(), mi, 1e-12);
    EXPECT_NEAR(entropy[n].item<double>(), h, 1e-12);
    EXPECT_NEAR(variance[n].item<double>(), var, 1e-12);
    auto sorted = std::get<0>(p.probs[n].sort(0, true));
    EXPECT_NEAR(margin[n].item<double>(), 1.0 - (sorted[0] - sorted[1]).item<double>(), 1e-12);
  }
  Predictive point = p;  // one prediction: BALD has nothing to measure, and says so
  point.sample_probs = torch::Tensor();
  EXPECT_THROW(active_score(point, "bald"), InvalidArgument);
  EXPECT_THROW(active_score(p, "nonsense"), InvalidArgument);
}

TEST(Acquisition, PowerSelectionDrawsInProportionToTheScores) {
  auto scores = at::tensor({0.1, 0.2, 0.3, 0.4}, at::kDouble);
  std::vector<double> first(4, 0.0);
  const int draws = 20000;
  for (int i = 0; i < draws; ++i) {
    auto picked = draw_in_proportion(scores, 2, 1000 + i);
    ASSERT_NE(picked[0].item<int64_t>(), picked[1].item<int64_t>());
    first[picked[0].item<int64_t>()] += 1.0 / draws;
  }
  for (int j = 0; j < 4; ++j) EXPECT_NEAR(first[j], scores[j].item<double>(), 0.012) << "index " << j;
}

}  // namespace credence
