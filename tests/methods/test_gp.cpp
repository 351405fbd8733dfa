// The exact GP: its predictive and evidence against closed forms, its kernel fit at an optimum.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cmath>
#include <filesystem>

#include "credence/credence.h"
#include "credence/posterior/gp.h"
#include "problems.h"

namespace credence {
namespace {

// Matern 5/2 by its textbook formula, one pair at a time.
double matern52(const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& ls, double amp) {
  double r = ((a - b) / ls).pow(2).sum().sqrt().item<double>();
  return amp * amp * (1 + std::sqrt(5.0) * r + 5.0 * r * r / 3.0) * std::exp(-std::sqrt(5.0) * r);
}

}  // namespace

TEST(Gp, LinearKernelIsTheConjugateLinearPosterior) {
  // Prior precision 2 on weights and bias is amplitude^2 = 1/2; noise 0.5 as in conjugate_request.
  auto req = conjugate_request("gp:kernel=linear,optimize=false,amplitude=0.7071067811865476", 1, 0);
  auto fitted = fit(req);
  const auto& raw = req.data.fit;
  auto exact = exact_linear_posterior(raw);
  auto st = Standardizer::fit(raw);
  auto z = st.apply(raw);
  auto x1 = at::cat({z.x, at::ones({z.size(), 1}, at::kDouble)}, 1);
  auto p = fitted.predict(raw);
  EXPECT_TRUE(at::allclose(p.mean, x1.mv(exact.mean) * st.y_std + st.y_mean, 1e-8, 1e-10));
  auto var = ((x1.mm(exact.cov) * x1).sum(1) + 0.25) * (st.y_std * st.y_std);
  EXPECT_TRUE(at::allclose(p.var, var, 1e-8, 1e-10));
}

TEST(Gp, EvidenceAndPredictiveMatchTheClosedForm) {
  auto x = at::rand({12, 2}, at::kDouble), y = at::randn({12}, at::kDouble), xs = at::rand({4, 2}, at::kDouble);
  GpKernel k{GpKernelKind::Matern52, at::log(at::tensor({0.3, 0.7}, at::kDouble)), at::log(at::tensor(1.3, at::kDouble))};
  const double noise = 0.01;
  auto K = at::empty({12, 12}, at::kDouble), Ks = at::empty({12, 4}, at::kDouble);
  for (int i = 0; i < 12; ++i) {
    for (int j = 0; j < 12; ++j) K[i][j] = matern52(x[i], x[j], k.log_lengthscale.exp(), 1.3);
    for (int j = 0; j < 4; ++j) Ks[i][j] = matern52(x[i], xs[j], k.log_lengthscale.exp(), 1.3);
  }
  auto C = K + noise * at::eye(12, at::kDouble);
  double logdet = at::logdet(C).item<double>();
  double expected = -0.5 * y.dot(at::linalg_solve(C, y)).item<double>() - 0.5 * logdet - 6 * std::log(2 * M_PI);
  GpPosterior post(x, y, k, noise);
  EXPECT_NEAR(post.log_marginal_likelihood(), expected, 1e-7);
  auto [mean, cov] = post.latent(xs);
  EXPECT_TRUE(at::allclose(mean, Ks.t().mv(at::linalg_solve(C, y)), 1e-9, 1e-9));
  auto prior_var = 1.3 * 1.3 * at::ones({4}, at::kDouble);
  EXPECT_TRUE(at::allclose(cov.diagonal(), prior_var - (Ks * at::linalg_solve(C, Ks)).sum(0), 1e-9, 1e-9));
  // Joint draws have that mean and covariance.
  auto draws = post.function_draws(xs, 20000, 3) - mean;
  auto emp = draws.t().mm(draws) / 20000.0;
  EXPECT_LT((emp - cov).abs().max().item<double>(), 0.05 * cov.diagonal().max().item<double>());
}

TEST(Gp, KernelFitIsAMaximumOfTheEvidence) {
  auto req = sine_request("gp:kernel=rbf", "synthetic:sine?n=40&seed=2");
  auto fitted = fit(req);
  const auto& post = dynamic_cast<const GpPosterior&>(*fitted.posterior);
  double best = post.log_marginal_likelihood();
  auto data = fitted.standardizer.apply(req.data.fit);
  for (int which = 0; which < 3; ++which)
    for (double step : {-0.05, 0.05}) {
      GpKernel k = post.kernel();
      double noise = post.noise_var();
      if (which == 0) k.log_amplitude = k.log_amplitude + step;
      if (which == 1) k.log_lengthscale = k.log_lengthscale + step;
      if (which == 2) noise *= std::exp(step);
      double lml = -gp_neg_log_marginal_likelihood(k, data.x, data.y, at::tensor(noise, at::kDouble)).item<double>();
      EXPECT_LE(lml, best + 1e-6) << "parameter " << which << " step " << step;
    }
  // Where it has data (1 <= |x| <= 3) its mean is close to sin(x).
  auto test = load_data("synthetic:sine?n=400&seed=2&part=test", {torch::kFloat64}).fit;
  auto ax = test.x.select(1, 0).abs();
  test = test.subset(at::nonzero((ax >= 1) & (ax <= 3)).flatten());
  auto p = fitted.predict(test);
  EXPECT_LT((p.mean - at::sin(test.x.select(1, 0))).pow(2).mean().sqrt().item<double>(), 0.15);
}

TEST(Gp, SavesAndLoads) {
  auto req = sine_request("gp", "synthetic:sine?n=30");
  auto fitted = fit(req);
  auto path = std::filesystem::temp_directory_path() / "credence_gp_test.crd";
  std::filesystem::remove(path);
  fitted.save(path.string());
  auto loaded = FittedModel::load(path.string());
  std::filesystem::remove(path);
  auto a = fitted.predict(req.data.fit), b = loaded.predict(req.data.fit);
  EXPECT_TRUE(at::allclose(a.mean, b.mean, 1e-10, 1e-12));
  EXPECT_TRUE(at::allclose(a.var, b.var, 1e-10, 1e-12));
}

TEST(Gp, RefusesClassification) {
  auto req = moons_request("gp");
  try {
    fit(req);
    FAIL() << "a GP fit on classification data must be refused";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("regression"), std::string::npos) << e.what();
  }
}

}  // namespace credence
