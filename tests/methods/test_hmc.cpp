// NUTS and HMC against targets with known moments: a correlated Gaussian, Bayesian linear
// regression (closed-form posterior) and Neal's funnel.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <torch/autograd.h>

#include <cmath>

#include "credence/credence.h"
#include "credence/methods/hmc.h"
#include "problems.h"

namespace credence {
namespace {

// log N(q; mu, Sigma) up to a constant, by its precision matrix.
LogDensity gaussian(torch::Tensor mu, torch::Tensor precision) {
  return [mu, precision](const torch::Tensor& q, torch::Tensor& grad) {
    auto d = q - mu;
    auto pd = precision.mv(d);
    grad.copy_(-pd);
    return -0.5 * at::dot(d, pd).item<double>();
  };
}

}  // namespace

TEST(Hmc, NutsRecoversAGaussiansMoments) {
  auto cov = at::tensor({4.0, 1.2, 1.2, 0.5}, at::kDouble).view({2, 2});
  auto mu = at::tensor({1.0, -2.0}, at::kDouble);
  SamplerSettings s;
  s.warmup = 300;
  s.draws = 2000;
  auto chain = run_chain(gaussian(mu, at::inverse(cov)), at::zeros({2}, at::kDouble), s, 7);
  auto x = chain.draws.to(at::kDouble);
  auto mean = x.mean(0);
  auto c = x - mean;
  auto sample_cov = c.t().mm(c) / (x.size(0) - 1);
  // NUTS draws of a Gaussian are nearly independent: the standard error of the mean is ~sd/sqrt(n).
  EXPECT_LT(((mean - mu) / cov.diag().sqrt()).abs().max().item<double>(), 4.0 / std::sqrt(2000.0));
  EXPECT_TRUE(at::allclose(sample_cov, cov, 0.1, 0.05));
  EXPECT_EQ(chain.divergences, 0);
  // Dual averaging aims at 0.8; the final averaged step usually accepts a little more.
  EXPECT_GT(chain.mean_accept, 0.7);
  // The adapted inverse mass matrix estimates the marginal variances.
  EXPECT_TRUE(at::allclose(chain.inverse_mass, cov.diag(), 0.5, 0));
  // A dense metric learns the correlation too, which shortens the trajectories. A longer warm-up
  // gives its last window enough draws (~500) to estimate the covariance within the tolerance.
  s.dense_mass = true;
  s.warmup = 1000;
  auto dense = run_chain(gaussian(mu, at::inverse(cov)), at::zeros({2}, at::kDouble), s, 7);
  EXPECT_TRUE(at::allclose(dense.inverse_mass, cov, 0.3, 0.1)) << dense.inverse_mass;
  EXPECT_LT(dense.mean_leapfrogs, chain.mean_leapfrogs);
  auto xd = dense.draws.to(at::kDouble);
  EXPECT_LT(((xd.mean(0) - mu) / cov.diag().sqrt()).abs().max().item<double>(), 4.0 / std::sqrt(2000.0));
}

TEST(Hmc, EllipticalSliceSamplingRecoversAConjugateGaussian) {
  // Prior N(m0, diag(s0^2)) times the likelihood N(y; f, diag(s^2)): the posterior is Gaussian with
  // precision 1/s0^2 + 1/s^2 and mean (m0/s0^2 + y/s^2) / precision, coordinate by coordinate.
  auto m0 = at::tensor({0.5, -1.0, 2.0}, at::kDouble), s0 = at::tensor({1.0, 2.0, 0.5}, at::kDouble);
  auto y = at::tensor({1.5, 1.0, 1.0}, at::kDouble), sd = at::tensor({1.0, 0.5, 2.0}, at::kDouble);
  LogLikelihood log_likelihood = [&](const torch::Tensor& f) {
    return -0.5 * ((f - y) / sd).pow(2).sum().item<double>();
  };
  SamplerSettings s;
  s.warmup = 100;
  s.draws = 20000;
  auto chain = run_elliptical_chain(log_likelihood, m0, s0, at::zeros({3}, at::kDouble), s, 11);
  auto precision = s0.pow(-2) + sd.pow(-2);
  auto mean = (m0 / s0.pow(2) + y / sd.pow(2)) / precision;
  auto x = chain.draws.to(at::kDouble);
  EXPECT_LT(((x.mean(0) - mean) * precision.sqrt()).abs().max().item<double>(), 0.06);  // draws are correlated
  EXPECT_TRUE(at::allclose(x.var(0), precision.reciprocal(), 0.06, 0)) << x.var(0) << precision.reciprocal();
  EXPECT_GT(chain.mean_leapfrogs, 1.0);  // shrinking brackets: more than one likelihood per draw
  // The log density is the log prior plus the log likelihood at each draw.
  auto last = x[-1];
  EXPECT_NEAR(chain.log_density[-1].item<double>(),
              log_likelihood(last) - 0.5 * ((last - m0) / s0).pow(2).sum().item<double>(), 1e-5);
}

TEST(Hmc, TheLaplaceReferenceOfAGaussianIsThatGaussian) {
  auto cov = at::tensor({2.0, 0.6, 0.1, 0.6, 1.0, -0.3, 0.1, -0.3, 0.5}, at::kDouble).view({3, 3});
  auto mu = at::tensor({1.0, -1.0, 0.5}, at::kDouble);
  // Away from the mode, the Newton step finds it.
  auto ref = laplace_reference(gaussian(mu, at::inverse(cov)), mu + at::tensor({1.0, 2.0, -1.0}, at::kDouble), 1e-3);
  EXPECT_TRUE(at::allclose(ref.factor.mm(ref.factor.t()), cov, 1e-6, 1e-8)) << ref.factor.mm(ref.factor.t());
  EXPECT_TRUE(at::allclose(ref.mean, mu, 1e-6, 1e-8)) << ref.mean;
  // A direction the density leaves flat keeps the floor's precision.
  auto flat = laplace_reference(gaussian(at::zeros({2}, at::kDouble), at::diag(at::tensor({4.0, 0.0}, at::kDouble))),
                                at::zeros({2}, at::kDouble), 0.25);
  EXPECT_TRUE(at::allclose(flat.factor.mm(flat.factor.t()), at::diag(at::tensor({0.25, 4.0}, at::kDouble)), 1e-6, 1e-8));
}

TEST(Hmc, PlainHmcRecoversAGaussiansMoments) {
  auto cov = at::tensor({1.0, 0.5, 0.5, 1.0}, at::kDouble).view({2, 2});
  auto mu = at::tensor({0.5, 0.0}, at::kDouble);
  SamplerSettings s;
  s.warmup = 300;
  s.draws = 3000;
  s.steps = 10;
  auto chain = run_chain(gaussian(mu, at::inverse(cov)), at::zeros({2}, at::kDouble), s, 3);
  auto x = chain.draws.to(at::kDouble);
  auto c = x - x.mean(0);
  EXPECT_TRUE(at::allclose(x.mean(0), mu, 0, 0.1));
  EXPECT_TRUE(at::allclose(c.t().mm(c) / (x.size(0) - 1), cov, 0.1, 0.05));
}

}  // namespace credence

namespace credence {

// Neal's funnel: v ~ N(0, scale^2), x_i | v ~ N(0, exp(v)), i = 1..3.
LogDensity funnel(double scale) {
  return [scale](const torch::Tensor& q, torch::Tensor& grad) {
    double v = q[0].item<double>();
    auto x = q.narrow(0, 1, 3);
    double ssq = x.pow(2).sum().item<double>();
    grad[0] = -v / (scale * scale) - 1.5 + 0.5 * ssq * std::exp(-v);
    grad.narrow(0, 1, 3).copy_(-x * std::exp(-v));
    return -0.5 * v * v / (scale * scale) - 1.5 * v - 0.5 * ssq * std::exp(-v);
  };
}

struct FunnelRun {
  torch::Tensor draws;  // [chains * draws, 4]
  int64_t divergences = 0;
};
FunnelRun run_funnel(double scale, double target_accept) {
  SamplerSettings s;
  s.warmup = 500;
  s.draws = 1500;
  s.target_accept = target_accept;
  FunnelRun run;
  std::vector<torch::Tensor> draws;
  for (uint64_t c = 0; c < 4; ++c) {
    auto chain = run_chain(funnel(scale), at::zeros({4}, at::kDouble), s, 100 + c);
    draws.push_back(chain.draws.to(at::kDouble));
    run.divergences += chain.divergences;
  }
  run.draws = at::cat(draws);
  return run;
}

TEST(Hmc, NutsOnNealsFunnel) {
  // A mild funnel (scale 1.5): the marginals are recovered, v ~ N(0, 1.5^2) and
  // Var x_i = E exp(v) = exp(1.5^2 / 2).
  auto mild = run_funnel(1.5, 0.9);
  auto v = mild.draws.select(1, 0);
  EXPECT_LT(std::abs(v.mean().item<double>()), 0.15);
  EXPECT_NEAR(v.std().item<double>(), 1.5, 0.15);
  EXPECT_NEAR(mild.draws.narrow(1, 1, 3).var().item<double>(), std::exp(1.125), 0.6);
  // Neal's scale 3: the neck defeats one step size. The sampler must say so (divergences) and
  // misses the neck: v's spread is underestimated.
  auto hard = run_funnel(3.0, 0.8);
  auto vh = hard.draws.select(1, 0);
  EXPECT_GT(hard.divergences, 0);
  EXPECT_LT(vh.std().item<double>(), 3.0);
}

void expect_conjugate_posterior(const std::string& method) {
  auto req = conjugate_request(method, 50, 1e-3);
  auto f = fit(req);
  auto draws = dynamic_cast<const ParticlePosterior&>(*f.posterior).particles();
  ASSERT_EQ(draws.size(0), 2000);
  auto [mean, cov] = exact_linear_posterior(req.data.fit);
  auto c = draws - draws.mean(0);
  auto sample_cov = c.t().mm(c) / (draws.size(0) - 1);
  auto sd = cov.diag().sqrt();
  // NUTS draws of a Gaussian posterior are nearly independent; allow an ESS of half the draws.
  EXPECT_LT(((draws.mean(0) - mean) / sd).abs().max().item<double>(), 4.0 / std::sqrt(1000.0));
  EXPECT_TRUE(at::allclose(sample_cov.diag(), cov.diag(), 0.15, 0));
  EXPECT_EQ(f.info["report"]["chains"], 2);
}

TEST(Hmc, NutsReproducesTheConjugatePosterior) { expect_conjugate_posterior("nuts:chains=2,warmup=300,draws=1000"); }

TEST(Hmc, NutsWithAFloat32NetworkReproducesTheConjugatePosterior) {
  expect_conjugate_posterior("nuts:chains=2,warmup=300,draws=1000,precision=float32");
}

TEST(Hmc, WarmStartsFromLaplaceAndViReachTheSamePosterior) {
  for (const char* init : {"laplace", "vi"}) {
    SCOPED_TRACE(init);
    expect_conjugate_posterior(std::string("nuts:chains=2,warmup=300,draws=1000,init=") + init);
  }
}

}  // namespace credence

namespace credence {
namespace {

// The sampled log density and its gradient against central differences, for the network's
// hand-written backward pass (whole network, a layer subset) and autograd (last layer), with
// the noise level sampled.
TEST(Hmc, PosteriorLogDensityGradientMatchesFiniteDifferences) {
  Problem p;
  p.model = make_model("mlp:4,3", {2}, 1, torch::kFloat64);
  p.train.x = at::randn({11, 2}, at::kDouble);
  p.train.y = at::randn({11}, at::kDouble);
  p.likelihood = Likelihood::parse("gaussian", p.train);
  p.likelihood.sigma = 0.7;
  p.prior = GaussianPrior::isotropic(3.0, *p.model);
  auto map_theta = p.model->init_params(2).to(at::kDouble);
  for (const std::string spec : {"all", "names:layer1", "last_layer"}) {
    SCOPED_TRACE(spec);
    auto subset = ParamSubset::parse(spec, *p.model);
    auto f = posterior_log_density(p, p.likelihood, subset, map_theta, true, 1.0, 0.1, at::kDouble);
    const int64_t D = subset.size + 1;
    auto q = at::cat({subset.gather(map_theta) + 0.1 * at::randn({subset.size}, at::kDouble),
                      at::full({1}, std::log(0.7), at::kDouble)});
    auto grad = at::zeros({D}, at::kDouble), scratch = at::zeros({D}, at::kDouble);
    const double value = f(q, grad);
    // -U by hand: the Gaussian NLL, the weight prior and the Gamma prior on exp(-2 s).
    auto theta = subset.scatter(map_theta, q.narrow(0, 0, subset.size));
    const double s = q[subset.size].item<double>();
    auto r = p.model->forward(p.train.x, theta).squeeze(-1) - p.train.y;
    double u = 0.5 * r.pow(2).sum().item<double>() * std::exp(-2 * s) + 11 * (s + 0.5 * std::log(2 * M_PI)) +
               0.5 * 3.0 * q.narrow(0, 0, subset.size).pow(2).sum().item<double>() + 2.0 * s + 0.1 * std::exp(-2 * s);
    EXPECT_NEAR(value, -u, 1e-9);
    // Autograd agrees with the hand-written passes.
    auto by_autograd = posterior_log_density(p, p.likelihood, subset, map_theta, true, 1.0, 0.1, at::kDouble, false);
    auto grad_autograd = at::zeros({D}, at::kDouble);
    EXPECT_NEAR(by_autograd(q, grad_autograd), value, 1e-9);
    EXPECT_LT((grad_autograd - grad).abs().max().item<double>(), 1e-9);
    for (int64_t i = 0; i < D; ++i) {
      const double h = 1e-6;
      auto up = q.clone(), down = q.clone();
      up[i] += h;
      down[i] -= h;
      const double numeric = (f(up, scratch) - f(down, scratch)) / (2 * h);
      EXPECT_NEAR(grad[i].item<double>(), numeric, 1e-5 * (1 + std::abs(numeric))) << "coordinate " << i;
    }
  }
}

TEST(Hmc, HandWrittenGradientsOfAClassifierEqualAutograd) {
  Problem p;
  p.model = make_model("mlp:5", {2}, 3, torch::kFloat64);
  p.train.x = at::randn({13, 2}, at::kDouble);
  p.train.y = at::randint(0, 3, {13}, at::kLong);
  p.train.task = Task::Classification;
  p.train.num_classes = 3;
  p.likelihood = Likelihood::parse("categorical", p.train);
  p.prior = GaussianPrior::isotropic(2.0, *p.model);
  auto theta = p.model->init_params(3).to(at::kDouble);
  auto subset = ParamSubset::parse("all", *p.model);
  auto by_hand = posterior_log_density(p, p.likelihood, subset, theta, false, 1.0, 0.1, at::kDouble, true);
  auto by_autograd = posterior_log_density(p, p.likelihood, subset, theta, false, 1.0, 0.1, at::kDouble, false);
  auto g1 = at::zeros({subset.size}, at::kDouble), g2 = at::zeros({subset.size}, at::kDouble);
  for (int call = 0; call < 2; ++call) {  // the second call reuses the first's buffers
    auto q = theta + 0.3 * call;
    EXPECT_NEAR(by_hand(q, g1), by_autograd(q, g2), 1e-10);
    EXPECT_LT((g1 - g2).abs().max().item<double>(), 1e-10);
  }
}

}  // namespace
}  // namespace credence
