// IVON on Bayesian linear regression, where the per-example loss is quadratic: the Hessian
// estimate, the mean and the variances against closed forms; learned noise; options.
#include <ATen/ATen.h>
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>

#include "credence/credence.h"
#include "problems.h"

namespace credence {
namespace {

constexpr double kSigma = 0.5, kPrecision = 2.0;
constexpr int64_t kN = kConjugateRows;

FitRequest linear(const std::string& method, int64_t steps, double lr) {
  return conjugate_request(method, steps, lr);
}

// Over [W (3), b] in standardized units: the exact posterior (mean, precision), the inputs X1 and
// targets y, and hess, the diagonal of the per-example NLL Hessian X1^T X1 / (sigma^2 N) that h
// estimates (the prior enters separately, as delta = precision / N).
struct Exact {
  torch::Tensor mean, precision, X1, y, hess;
};
Exact exact_posterior() {
  auto raw = load_data("synthetic:linear?n=60&d=3&noise=0.5", {torch::kFloat64}).fit;
  auto data = Standardizer::fit(raw).apply(raw);
  auto X1 = at::cat({data.x, at::ones({kN, 1}, at::kDouble)}, 1);
  auto gram = X1.t().mm(X1) / (kSigma * kSigma);
  auto precision = gram + kPrecision * at::eye(4, at::kDouble);
  auto mean = at::linalg_solve(precision, X1.t().mv(data.y) / (kSigma * kSigma));
  return {mean, precision, X1, data.y, gram.diagonal() / kN};
}

const GaussianPosterior& gaussian(const FittedModel& f) { return dynamic_cast<const GaussianPosterior&>(*f.posterior); }

// h recovered from the posterior variance 1 / (N (h + delta)), delta = prior precision / N.
torch::Tensor hessian_estimate(const FittedModel& f) {
  return 1.0 / (kN * gaussian(f).variance()) - kPrecision / kN;
}

}  // namespace

TEST(Ivon, HessianConvergesFromFarStarts) {
  // h starts 400x below and 100x above the truth; with beta2 = 0.995 it forgets h0 within about
  // 2000 steps. 16 weight samples per step (the stacked path) keep h's noise near 2%.
  auto exact = exact_posterior();
  for (double h0 : {0.01, 400.0}) {
    auto f = fit(linear(fmt::format("ivon:hess_init={},beta2=0.995,mc_samples=16", h0), 2500, 0.05));
    auto ratio = hessian_estimate(f) / exact.hess;
    EXPECT_LT((ratio - 1).abs().max().item<double>(), 0.1) << "h0 " << h0 << " ratio " << ratio;
    EXPECT_NEAR(f.info["report"]["hess_init_weight"].get<double>(), std::pow(0.995, 2500), 1e-15);
  }
}

TEST(Ivon, MeanAndVariancesMatchTheConjugatePosterior) {
  // For a Gaussian target the best diagonal Gaussian has the exact mean and variances
  // 1 / diag(precision) (not the marginal variances diag(precision^-1)). A constant step leaves
  // m fluctuating by about sqrt(lr / 2) of q's sd, and h by a few percent (as above).
  auto exact = exact_posterior();
  auto f = fit(linear("ivon:hess_init=1,beta2=0.995,mc_samples=16", 3000, 0.01));
  const auto& q = gaussian(f);
  auto sd = exact.precision.inverse().diagonal().sqrt();
  auto z = (q.mean() - exact.mean) / sd;
  EXPECT_LT(z.abs().max().item<double>(), 0.15) << z;
  auto ratio = q.variance() * exact.precision.diagonal();
  EXPECT_LT((ratio - 1).abs().max().item<double>(), 0.1) << ratio;
}

TEST(Ivon, CosineScheduleSettlesTheMean) {
  // The default step decays to 0 over the run, so the mean ends nearer the exact one than under a
  // constant step (whose jitter is about sqrt(lr / 2) of q's sd); the variances are the same.
  auto exact = exact_posterior();
  auto sd = exact.precision.inverse().diagonal().sqrt();
  auto error = [&](const std::string& schedule) {
    auto f = fit(linear("ivon:hess_init=1,beta2=0.995,mc_samples=16,schedule=" + schedule, 3000, 0.05));
    auto ratio = gaussian(f).variance() * exact.precision.diagonal();
    EXPECT_LT((ratio - 1).abs().max().item<double>(), 0.1) << schedule << ratio;
    return ((gaussian(f).mean() - exact.mean) / sd).abs().max().item<double>();
  };
  const double constant = error("constant"), cosine = error("cosine");
  EXPECT_LT(cosine, 0.05);
  EXPECT_LT(cosine, 0.5 * constant) << cosine << " vs " << constant;
}

TEST(Ivon, EssTempersThePosterior) {
  // ess = 4N targets p(theta | D)^4 (temperature 1/4): the same mean (delta stays precision / N)
  // and a quarter of the variances.
  auto exact = exact_posterior();
  auto f = fit(linear("ivon:hess_init=1,beta2=0.995,mc_samples=16,ess=240", 3000, 0.01));
  const auto& q = gaussian(f);
  auto sd = exact.precision.inverse().diagonal().sqrt();
  EXPECT_LT(((q.mean() - exact.mean) / sd).abs().max().item<double>(), 0.15);
  auto ratio = q.variance() * 4.0 * exact.precision.diagonal();
  EXPECT_LT((ratio - 1).abs().max().item<double>(), 0.1) << ratio;
  EXPECT_EQ(f.info["report"]["ess"].get<double>(), 240.0);
}

TEST(Ivon, DefaultBeta2MovesTheHessianSlowly) {
  // With beta2 = 0.99999, E[h_T] = hess + (h0 - hess) beta2^T (E[hhat] = hess on a quadratic;
  // the improved update's extra term is O((1 - beta2)^2)): 2000 steps move h 2% of the way.
  auto exact = exact_posterior();
  const int64_t steps = 2000;
  const double h0 = 0.1, forget = std::pow(0.99999, steps);
  auto f = fit(linear(fmt::format("ivon:hess_init={}", h0), steps, 0.05));
  auto moved = hessian_estimate(f) - h0;
  auto expected = (exact.hess - h0) * (1 - forget);
  EXPECT_LT(((moved / expected) - 1).abs().max().item<double>(), 0.15) << moved << expected;
  EXPECT_NEAR(f.info["report"]["hess_init_weight"].get<double>(), forget, 1e-12);
}

TEST(Ivon, LearnedNoiseIsTheExpectedResidual) {
  // The noise maximizing the expected log-likelihood under q = N(m, diag(v)) is
  // sigma^2 = mean_n E_q[(x1_n theta - y_n)^2] = mean_n (x1_n m - y_n)^2 + mean_n sum_j x1_nj^2 v_j.
  auto exact = exact_posterior();
  auto req = linear("ivon:hess_init=1,beta2=0.999", 2000, 0.05);
  req.likelihood = "gaussian";
  auto f = fit(req);
  const auto& q = gaussian(f);
  const double expected =
      ((exact.X1.mv(q.mean()) - exact.y).pow(2).mean() + exact.X1.pow(2).mv(q.variance()).mean()).item<double>();
  const double sigma = f.likelihood.sigma;
  EXPECT_NEAR(sigma * sigma / expected, 1.0, 0.03) << sigma;
  EXPECT_LT(sigma, 0.9);  // learned, not the initial 1
}

TEST(Ivon, DeterministicForASeed) {
  auto run = [](uint64_t seed) {
    auto req = linear("ivon:beta2=0.99", 50, 0.05);
    req.train.seed = seed;
    return fit(req);
  };
  auto a = run(0), b = run(0), c = run(1);
  EXPECT_TRUE(at::equal(gaussian(a).mean(), gaussian(b).mean()));
  EXPECT_TRUE(at::equal(gaussian(a).variance(), gaussian(b).variance()));
  EXPECT_FALSE(at::equal(gaussian(a).mean(), gaussian(c).mean()));
}

TEST(Ivon, AutoHessInitFollowsTheLikelihoodsCurvature) {
  auto hess_init = [](const FitRequest& req) { return fit(req).info["report"]["hess_init"].get<double>(); };
  EXPECT_DOUBLE_EQ(hess_init(linear("ivon", 1, 0.05)), 1 / (kSigma * kSigma));  // fixed noise 0.5
  auto learned = linear("ivon", 1, 0.05);
  learned.likelihood = "gaussian";  // the noise starts at 1
  EXPECT_DOUBLE_EQ(hess_init(learned), 1.0);
  auto classes = moons_request("ivon");
  classes.train.epochs = 1;
  EXPECT_DOUBLE_EQ(hess_init(classes), 0.1);
  EXPECT_DOUBLE_EQ(hess_init(linear("ivon:hess_init=0.3", 1, 0.05)), 0.3);
}

TEST(Ivon, BadOptionsAreRefused) {
  for (std::string spec : {"ivon:hess_init=0", "ivon:hess_init=-1", "ivon:hess_init=large", "ivon:hess_init=1x",
                           "ivon:beta1=1", "ivon:beta2=1", "ivon:beta2=-0.1", "ivon:ess=-5", "ivon:mc_samples=0",
                           "ivon:clip=-1", "ivon:schedule=linear"})
    EXPECT_THROW(resolve_method(spec), InvalidArgument) << spec;
  EXPECT_NO_THROW(resolve_method("ivon:ess=1000,clip=0.1,mc_samples=2"));
}

}  // namespace credence

#include "../../src/methods/ivon_update.h"
#include "credence/core/rng.h"

namespace credence {
namespace {

TEST(Ivon, FusedPassesEqualTheTensorOps) {
  for (auto dtype : {at::kDouble, at::kFloat}) {
    for (int64_t S : {1, 3}) {
     for (bool with_mean : {false, true}) {
      auto gen = cpu_generator(11);
      const int64_t P = 257;
      auto opts = at::TensorOptions().dtype(dtype);
      auto m = at::randn({P}, gen, opts), h = at::rand({P}, gen, opts) * 2 - 0.5, g = at::randn({P}, gen, opts);
      auto delta = at::rand({P}, gen, opts) + 0.1, eps = at::randn({S, P}, gen, opts);
      auto grad = at::randn({S, P}, gen, opts);
      auto prior_mean = with_mean ? at::randn({P}, gen, opts) : torch::Tensor();
      ivon::Hyper hyper{0.9, 0.99, 50.0, 0.1, 0.05, 3};
      std::vector<torch::Tensor> results[2];
      double priors[2];
      for (bool fused : {false, true}) {
        auto m2 = m.clone(), h2 = h.abs().clone(), g2 = g.clone();
        auto sigma = at::empty({P}, opts), theta = at::empty({S, P}, opts);
        ivon::sample(m2, h2, delta, hyper.lambda, eps, sigma, theta, fused);
        priors[fused] = ivon::update(m2, h2, g2, delta, prior_mean, grad, eps, sigma, hyper, fused);
        results[fused] = {sigma, theta, m2, h2, g2};
      }
      const double tol = dtype == at::kDouble ? 1e-12 : 1e-5;
      for (size_t k = 0; k < results[0].size(); ++k)
        EXPECT_TRUE(at::allclose(results[0][k], results[1][k], tol, tol)) << "tensor " << k << " S " << S;
      EXPECT_NEAR(priors[0], priors[1], tol * (1 + std::abs(priors[0])));
     }
    }
  }
}

}  // namespace
}  // namespace credence
