// SVGD and repulsive ensembles: kernel algebra against autograd, the conjugate posterior, and the
// effect of the repulsion.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <torch/autograd.h>

#include "credence/credence.h"
#include "credence/methods/particles.h"
#include "problems.h"

namespace credence {
namespace {

double mean_pairwise_distance(const torch::Tensor& points) {
  auto flat = points.reshape({points.size(0), -1});
  auto d = at::cdist(flat, flat);
  return (d.sum() / (flat.size(0) * (flat.size(0) - 1))).item<double>();
}

}  // namespace

TEST(Particles, KernelTermsEqualAutograd) {
  auto x = at::randn({5, 3}, at::kDouble);
  auto g = at::randn({5, 3}, at::kDouble);
  const double h = 1.7;
  auto kernel = [&](const torch::Tensor& a, const torch::Tensor& b) { return at::exp(-(a - b).pow(2).sum() / h); };
  // sum_j grad_{x_j} k(x_j, x_i), pair by pair.
  auto drift = at::zeros_like(x);
  for (int64_t i = 0; i < 5; ++i)
    for (int64_t j = 0; j < 5; ++j) {
      auto xj = x[j].clone().requires_grad_(true);
      drift[i] += torch::autograd::grad({kernel(xj, x[i])}, {xj})[0];
    }
  auto stein = (rbf_kernel(x, h).first.mm(g) + drift) / 5.0;
  EXPECT_TRUE(at::allclose(stein_direction(x, g, h), stein, 1e-9, 1e-12));

  auto xr = x.clone().requires_grad_(true);
  auto kr = at::exp(-(xr.unsqueeze(1) - x.unsqueeze(0)).pow(2).sum(-1) / h);  // x_i variable, x_j fixed
  auto logsum = at::log(kr.sum(1)).sum();
  auto repulsion = -torch::autograd::grad({logsum}, {xr})[0];
  EXPECT_TRUE(at::allclose(kde_repulsion(x, h), repulsion, 1e-9, 1e-12));
}

TEST(Particles, MedianBandwidth) {
  auto x = at::tensor({0.0, 1.0, 3.0}, at::kDouble).view({3, 1});  // squared distances 1, 9, 4
  auto [k, h] = rbf_kernel(x);
  EXPECT_NEAR(h, 4.0 / std::log(4.0), 1e-12);
  EXPECT_NEAR(k[0][2].item<double>(), std::exp(-9.0 / h), 1e-12);
  EXPECT_EQ(rbf_kernel(x, 2.5).second, 2.5);
}

TEST(Particles, OneParticleIsMap) {
  auto map = particles_of(fit(moons_request("map")));
  for (std::string m : {"svgd:members=1", "repulsive:members=1,space=weight", "repulsive:members=1"})
    EXPECT_TRUE(at::allclose(particles_of(fit(moons_request(m))), map, 1e-5, 1e-6)) << m;
}

TEST(Particles, RepulsionSpreadsMembers) {
  auto plain = particles_of(fit(moons_request("ensemble:members=4")));
  auto weight = particles_of(fit(moons_request("repulsive:members=4,space=weight")));
  EXPECT_GT(mean_pairwise_distance(weight), mean_pairwise_distance(plain));
  // In function space the members disagree more on the data than the plain ensemble's do.
  auto x = load_data("synthetic:moons?n=200").fit;
  auto disagreement = [&](const std::string& m) {
    return fit(moons_request(m)).predict(x).sample_probs.var(0).mean().item<double>();
  };
  EXPECT_GT(disagreement("repulsive:members=4"), disagreement("ensemble:members=4"));
}

TEST(Particles, BadOptionsAreRefused) {
  EXPECT_THROW(fit(moons_request("svgd:members=0")), InvalidArgument);
  EXPECT_THROW(fit(moons_request("svgd:bandwidth=-1")), InvalidArgument);
  EXPECT_THROW(fit(moons_request("repulsive:space=weight,context=4")), InvalidArgument);
  EXPECT_THROW(fit(moons_request("repulsive:space=output")), InvalidArgument);
}

TEST(Particles, SvgdReachesTheConjugatePosterior) {
  auto req = conjugate_request("svgd", 800, 0.03);  // full batch: SVGD's fixed point without minibatch noise
  auto exact = exact_linear_posterior(req.data.fit);
  // SVGD's fixed point has the exact mean; its spread approaches the posterior covariance only
  // as the particles grow (finite-particle variance collapse), so the error must shrink with M.
  std::vector<double> cov_errors;
  for (int members : {10, 50, 200}) {
    req.method = fmt::format("svgd:members={},optimizer=sgd", members);
    auto p = particles_of(fit(req));
    auto mean = p.mean(0);
    auto centered = p - mean;
    auto cov = centered.t().mm(centered) / (members - 1);
    EXPECT_LT(((mean - exact.mean).norm() / exact.mean.norm()).item<double>(), 1e-3) << members;
    cov_errors.push_back(((cov - exact.cov).norm() / exact.cov.norm()).item<double>());
  }
  EXPECT_LT(cov_errors[1], 0.8 * cov_errors[0]);
  EXPECT_LT(cov_errors[2], 0.8 * cov_errors[1]);
  EXPECT_LT(cov_errors[2], 0.2);
}

}  // namespace credence
