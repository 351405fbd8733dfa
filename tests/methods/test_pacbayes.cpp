// PAC-Bayes training and certificates: objectives against the bound arithmetic, KL and bounded
// loss by hand, the per-row sampled risk against whole-network sampling, and a certified fit.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cmath>
#include <filesystem>

#include "credence/credence.h"
#include "credence/eval/pacbayes.h"
#include "credence/methods/pacbayes.h"
#include "credence/posterior/certified.h"
#include "problems.h"

namespace credence {
namespace {

torch::Tensor scalar(double v) { return at::full({}, v, at::kDouble); }

TEST(PacBayes, ObjectivesEqualTheBoundArithmetic) {
  const int64_t n = 30000;
  const double delta = 0.025, risk = 0.12, kl = 1500;
  for (auto [name, bound] : {std::pair{"classic", PacBayesBound::McAllester}, std::pair{"quad", PacBayesBound::Quad}}) {
    double got = pacbayes_objective(name, scalar(risk), scalar(kl), n, delta).item<double>();
    EXPECT_NEAR(got, pacbayes_bound(bound, risk, kl, n, delta), 1e-12) << name;
  }
  // lambda takes the optimal lambda in closed form: no lambda on a fine grid does better.
  double got = pacbayes_objective("lambda", scalar(risk), scalar(kl), n, delta).item<double>();
  double best = 1e9;
  for (double l = 1e-4; l < 2; l += 1e-4) best = std::min(best, pacbayes_bound(PacBayesBound::Lambda, risk, kl, n, delta, l));
  EXPECT_LE(got, best + 1e-9);
  EXPECT_NEAR(got, best, 1e-6);
  EXPECT_THROW(pacbayes_objective("mcallister", scalar(risk), scalar(kl), n, delta), InvalidArgument);
}

TEST(PacBayes, GaussianKlByHand) {
  // Prior N(0, 0.5^2). Coordinate 1: mean 1, var 0.25 -> 0.5 (1 + 4 - 1 - 0) = 2.
  // Coordinate 2: mean 0, var 1 -> 0.5 (4 - 1 - log 4) = 0.806853.
  CertifiedGaussianPosterior q(at::tensor({1.0, 0.0}, at::kDouble), at::tensor({0.25, 1.0}, at::kDouble),
                               at::zeros({2}, at::kDouble), 0.5, {});
  EXPECT_NEAR(q.kl(), 2.0 + 0.5 * (3.0 - std::log(4.0)), 1e-12);
  CertifiedGaussianPosterior same(at::zeros({2}, at::kDouble), at::full({2}, 0.25, at::kDouble),
                                  at::zeros({2}, at::kDouble), 0.5, {});
  EXPECT_NEAR(same.kl(), 0.0, 1e-15);
}

TEST(PacBayes, BoundedCrossEntropyByHand) {
  // p_y = 1/2 -> log 2 / log(1e4); p_y = e^-20 / (1 + e^-20) < pmin -> clipped to 1.
  auto logits = at::tensor({0.0, 0.0, 0.0, -20.0}, at::kDouble).reshape({2, 2});
  auto loss = bounded_cross_entropy(logits, at::tensor({1, 1}, at::kLong), 1e-4);
  EXPECT_NEAR(loss[0].item<double>(), std::log(2.0) / std::log(1e4), 1e-12);
  EXPECT_NEAR(loss[1].item<double>(), 1.0, 1e-12);
}

TEST(PacBayes, PerRowSampledRiskMatchesWholeNetworkSampling) {
  auto req = moons_request("map");
  req.data = load_data("synthetic:moons?n=200", {torch::kFloat64});
  req.dtype = torch::kFloat64;
  req.train.epochs = 100;
  req.train.lr = 1e-2;
  auto f = fit(req);
  auto mean = particles_of(f)[0];
  auto sd = at::full_like(mean, 0.3);
  auto test = load_data("synthetic:moons?n=200&part=test", {torch::kFloat64}).fit;
  auto x = f.standardizer.inputs(test.x);
  // Zero spread: exactly the mean network's error.
  auto exact = stochastic_risk(*f.model, mean, at::zeros_like(sd), x, test.y, 1, 1e-4, 0);
  double mean_error = (f.model->forward(x, mean).argmax(-1) != test.y).to(at::kDouble).mean().item<double>();
  EXPECT_DOUBLE_EQ(exact.error, mean_error);
  EXPECT_EQ(exact.networks, 200);
  // Spread: 50 rounds (10,000 networks, one per row) against 2,000 whole networks on every row.
  auto per_row = stochastic_risk(*f.model, mean, sd, x, test.y, 50, 1e-4, 1);
  EXPECT_EQ(per_row.networks, 10000);
  GaussianPosterior q(mean, sd * sd);
  auto thetas = q.sample(2000, 7);
  auto wrong = (f.model->forward(x, thetas).argmax(-1) != test.y.unsqueeze(0)).to(at::kDouble);
  double whole = wrong.mean().item<double>();
  // Both estimate the same mean; their standard errors are ~sqrt(p(1-p)/10000) and the spread of
  // 2,000 network means (bounded by the per-row one).
  const double se = std::sqrt(whole * (1 - whole) / 10000) + wrong.mean(1).std().item<double>() / std::sqrt(2000.0);
  EXPECT_GT(whole, mean_error + 0.02) << "the spread should cost accuracy for the test to mean anything";
  EXPECT_NEAR(per_row.error, whole, 4 * se);
}

TEST(PacBayes, FitCarriesItsPriorAndCertifies) {
  auto req = moons_request("pacbayes:prior_std=0.1");
  req.data = load_data("synthetic:moons?n=600");
  req.train.epochs = 30;
  req.train.lr = 1e-2;
  auto f = fit(req);
  const auto& q = dynamic_cast<const CertifiedGaussianPosterior&>(*f.posterior);
  EXPECT_EQ(q.prior_rows().size(0), 300);
  EXPECT_EQ(f.info["report"]["bound_rows"], 300);
  EXPECT_GT(q.kl(), 0.0);
  EXPECT_NEAR(f.info["report"]["kl"].get<double>(), q.kl(), 1e-6 * (1 + q.kl()));
  // The prior rows are a keyed half, different from the first half.
  EXPECT_FALSE(at::equal(q.prior_rows(), at::arange(300, at::kLong)));

  auto keep = at::ones({600}, at::kBool);
  keep.index_fill_(0, q.prior_rows(), false);
  auto rows = req.data.fit.subset(keep.nonzero().squeeze(1));
  auto c = certify(q, *f.model, f.standardizer.inputs(rows.x), rows.y, {});
  EXPECT_EQ(c.n, 300);
  EXPECT_EQ(c.networks, 10200);  // whole passes: 34 x 300 >= 10,000
  EXPECT_NEAR(c.error_empirical_bound, sampled_risk_bound(c.error_estimate, c.networks, 0.01), 1e-12);
  EXPECT_NEAR(c.error_bound, kl_inverse(c.error_empirical_bound, pacbayes_complexity(c.kl, 300, 0.025)), 1e-12);
  EXPECT_GT(c.error_bound, c.error_estimate);
  EXPECT_LE(c.ce_bound, 1.0);
  // A useful network on moons: the stochastic error is small, and the bound holds on fresh data.
  auto test = load_data("synthetic:moons?n=2000&part=test").fit;
  auto risk = stochastic_risk(*f.model, q.mean(), q.variance().sqrt(), f.standardizer.inputs(test.x), test.y, 1,
                              1e-4, 3);
  EXPECT_LT(c.error_estimate, 0.2);
  EXPECT_LT(risk.error, c.error_bound);
  EXPECT_LT(c.error_bound, 0.6);  // non-vacuous even with 300 rows
  RecordProperty("certificate", c.to_json().dump());
}

TEST(PacBayes, TrainingLowersTheBoundObjective) {
  auto req = moons_request("pacbayes:prior=init,prior_std=0.1,objective=classic");
  req.train.epochs = 1;
  auto first = fit(req);
  req.train.epochs = 40;
  req.train.lr = 1e-2;
  auto later = fit(req);
  EXPECT_EQ(first.info["report"]["bound_rows"], 200);  // a data-free prior leaves every row
  EXPECT_LT(later.info["report"]["last_step"]["objective"].get<double>(),
            first.info["report"]["last_step"]["objective"].get<double>());
}

TEST(PacBayes, RefusesRegressionAndBadOptions) {
  auto req = conjugate_request("pacbayes", 1, 1e-2);
  EXPECT_THROW(fit(req), InvalidArgument);
  EXPECT_THROW(resolve_method("pacbayes:prior_fraction=1"), InvalidArgument);
  EXPECT_THROW(resolve_method("pacbayes:prior_std=0"), InvalidArgument);
  EXPECT_THROW(resolve_method("pacbayes:objective=kl"), InvalidArgument);
}

TEST(PacBayes, SavesAndLoadsItsPrior) {
  auto req = moons_request("pacbayes");
  req.train.epochs = 2;
  auto f = fit(req);
  auto path = (std::filesystem::temp_directory_path() / "credence_pacbayes_test.crd").string();
  f.save(path, true);
  auto g = FittedModel::load(path);
  std::filesystem::remove(path);
  const auto& a = dynamic_cast<const CertifiedGaussianPosterior&>(*f.posterior);
  const auto& b = dynamic_cast<const CertifiedGaussianPosterior&>(*g.posterior);
  EXPECT_TRUE(at::equal(a.prior_rows(), b.prior_rows()));
  EXPECT_TRUE(at::allclose(a.prior_mean(), b.prior_mean()));
  EXPECT_DOUBLE_EQ(a.prior_std(), b.prior_std());
  EXPECT_NEAR(a.kl(), b.kl(), 1e-9 * (1 + a.kl()));
}

}  // namespace
}  // namespace credence
