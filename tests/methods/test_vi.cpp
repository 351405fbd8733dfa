// Variational inference on Bayesian linear regression, where the optimal Gaussians are known in
// closed form: the full-covariance optimum is the exact posterior (its ELBO is the log evidence),
// and the mean-field optimum has the exact mean with precisions on the exact precision's diagonal.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cmath>

#include "credence/credence.h"
#include "credence/methods/vi.h"
#include "credence/posterior/lowrank_gaussian.h"

namespace credence {
namespace {

constexpr double kSigma = 0.5, kDelta = 2.0;

struct Exact {
  torch::Tensor X1, y, mean, cov, precision;
  double log_evidence = 0.0;
};

// The conjugate posterior in standardized units, parameters in [W (3), b] order.
Exact exact_linear(const Dataset& raw) {
  Exact e;
  auto data = Standardizer::fit(raw).apply(raw);
  e.X1 = at::cat({data.x, at::ones({data.size(), 1}, at::kDouble)}, 1);
  e.y = data.y;
  e.precision = e.X1.t().mm(e.X1) / (kSigma * kSigma) + kDelta * at::eye(4, at::kDouble);
  e.cov = at::inverse(e.precision);
  e.mean = e.cov.mv(e.X1.t().mv(e.y)) / (kSigma * kSigma);
  // log N(y; 0, sigma^2 I + X1 X1^T / delta)
  const int64_t n = data.size();
  auto S = kSigma * kSigma * at::eye(n, at::kDouble) + e.X1.mm(e.X1.t()) / kDelta;
  auto L = at::linalg_cholesky(S);
  auto z = at::linalg_solve_triangular(L, e.y.view({n, 1}), /*upper=*/false);
  e.log_evidence =
      (-0.5 * z.pow(2).sum() - at::log(at::diagonal(L)).sum() - 0.5 * n * std::log(2 * M_PI)).item<double>();
  return e;
}

// The ELBO of q = N(m, C) in closed form: E_q[log p(y | theta)] - KL(q || prior).
double closed_form_elbo(const Exact& e, const torch::Tensor& m, const torch::Tensor& C) {
  const int64_t n = e.y.size(0);
  auto r = e.y - e.X1.mv(m);
  auto expected_sq = r.pow(2).sum() + (e.X1.mm(C) * e.X1).sum();
  auto loglik = -0.5 * expected_sq / (kSigma * kSigma) - n * std::log(kSigma) - 0.5 * n * std::log(2 * M_PI);
  auto kl = 0.5 * (kDelta * (C.trace() + m.dot(m)) - 4 - 4 * std::log(kDelta) - at::logdet(C));
  return (loglik - kl).item<double>();
}

// A dense KL(N(m, C) || N(0, diag(1 / lambda))), independent of the structured forms.
double dense_kl(const torch::Tensor& m, const torch::Tensor& C, const torch::Tensor& lambda) {
  return (0.5 * ((lambda * C.diagonal()).sum() + (lambda * m * m).sum() - m.size(0) - at::log(lambda).sum() -
                 at::logdet(C)))
      .item<double>();
}

FitRequest linear_request(const std::string& method, int64_t epochs, double lr) {
  FitRequest req;
  req.data = load_data("synthetic:linear?n=60&d=3&noise=0.5", {torch::kFloat64});
  req.model = "mlp:";
  req.likelihood = "gaussian?sigma=0.5";
  req.dtype = torch::kFloat64;
  req.train.prior = "2";
  req.train.batch_size = 60;  // full batch: only the weight samples are random
  req.train.epochs = epochs;
  req.train.lr = lr;
  req.train.quiet = true;
  req.method = method;
  return req;
}

struct Moments {
  torch::Tensor mean, cov;
};
Moments lowrank_moments(const FittedModel& f) {
  const auto& q = dynamic_cast<const LowRankGaussianPosterior&>(*f.posterior);
  EXPECT_FALSE(q.index().defined());
  return {q.mean(), at::diag(q.variance()) + q.factor().mm(q.factor().t())};
}

double rel(const torch::Tensor& a, const torch::Tensor& b) { return ((a - b).norm() / b.norm()).item<double>(); }

}  // namespace

TEST(Vi, KlClosedFormsMatchTheDenseFormula) {
  auto opts = at::TensorOptions().dtype(at::kDouble);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(5);
  const int64_t K = 6, R = 2;
  auto m = at::randn({K}, gen, opts), sd = at::rand({K}, gen, opts) + 0.2;
  auto U = at::randn({K, R}, gen, opts) * 0.5, lambda = at::rand({K}, gen, opts) + 0.5;
  auto L = at::tril(at::randn({K, K}, gen, opts) * 0.3, -1) + at::diag(sd);
  EXPECT_NEAR(kl_diag_gaussian(m, sd, lambda).item<double>(), dense_kl(m, at::diag(sd * sd), lambda), 1e-10);
  EXPECT_NEAR(kl_lowrank_gaussian(m, sd, U, lambda).item<double>(),
              dense_kl(m, at::diag(sd * sd) + U.mm(U.t()), lambda), 1e-10);
  EXPECT_NEAR(kl_full_gaussian(m, L, lambda).item<double>(), dense_kl(m, L.mm(L.t()), lambda), 1e-10);
  // And the dense formula itself against Monte Carlo: mean of log q - log p over draws of q.
  const int64_t S = 200000;
  auto theta = m + at::randn({S, K}, gen, opts).mm(L.t());
  auto C = L.mm(L.t());
  auto d = theta - m;
  auto log_q = -0.5 * (d.mm(at::inverse(C)) * d).sum(1) - 0.5 * at::logdet(C) - 0.5 * K * std::log(2 * M_PI);
  auto log_p = -0.5 * (lambda * theta * theta).sum(1) + 0.5 * at::log(lambda).sum() - 0.5 * K * std::log(2 * M_PI);
  auto diff = log_q - log_p;
  const double se = (diff.std() / std::sqrt(static_cast<double>(S))).item<double>();
  EXPECT_NEAR(diff.mean().item<double>(), dense_kl(m, C, lambda), 5 * se);
}

TEST(Vi, FullReachesTheExactPosteriorAndItsEvidence) {
  auto req = linear_request("vi:family=full,samples=64,init_std=0.05,elbo_samples=4000", 1500, 3e-3);
  auto e = exact_linear(req.data.fit);
  auto f = fit(req);
  auto q = lowrank_moments(f);
  const double post_sd = e.cov.diagonal().sqrt().min().item<double>();
  EXPECT_LT((q.mean - e.mean).abs().max().item<double>(), 0.05 * post_sd);
  EXPECT_LT(rel(q.cov, e.cov), 0.05);
  // ELBO <= log evidence, with equality at the exact posterior: the gap is KL(q || posterior).
  const double elbo = closed_form_elbo(e, q.mean, q.cov);
  EXPECT_LE(elbo, e.log_evidence + 1e-9);
  EXPECT_GT(elbo, e.log_evidence - 0.01);
  // The reported Monte-Carlo ELBO agrees (standard error ~ 0.03 nats).
  EXPECT_NEAR(f.info["report"]["elbo"].get<double>(), e.log_evidence, 0.15);
}

TEST(Vi, LowRankWithFullRankEqualsFull) {
  auto req = linear_request("vi:family=lowrank:4,samples=64,init_std=0.05", 1500, 3e-3);
  auto e = exact_linear(req.data.fit);
  auto q = lowrank_moments(fit(req));
  EXPECT_LT((q.mean - e.mean).abs().max().item<double>(), 0.05 * e.cov.diagonal().sqrt().min().item<double>());
  EXPECT_LT(rel(q.cov, e.cov), 0.05);
}

TEST(Vi, MeanFieldHasTheExactMeanAndDiagonalPrecision) {
  auto req = linear_request("vi:samples=64,init_std=0.05", 1500, 3e-3);
  auto e = exact_linear(req.data.fit);
  auto f = fit(req);
  const auto& q = dynamic_cast<const GaussianPosterior&>(*f.posterior);
  EXPECT_LT((q.mean() - e.mean).abs().max().item<double>(), 0.05 * e.cov.diagonal().sqrt().min().item<double>());
  EXPECT_LT(rel(1.0 / q.variance(), e.precision.diagonal()), 0.03);
}

}  // namespace credence
