// Inference in a parameter subspace (subset=pca:K, random:K): the directions, the restricted
// prior, and NUTS in a full-rank subspace of Bayesian linear regression against the closed form.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cmath>
#include <filesystem>

#include "credence/credence.h"
#include "credence/model/subspace.h"
#include "problems.h"

namespace credence {
namespace {

const auto kF64 = at::TensorOptions().dtype(at::kDouble);

TEST(Subspace, PrincipalDirectionsSpanTheTrajectorysLargestSpread) {
  at::manual_seed(0);
  auto q = std::get<0>(at::linalg_qr(at::randn({12, 3}, kF64)));  // three orthonormal directions
  auto coef = at::randn({30, 3}, kF64) * at::tensor({5.0, 2.0, 0.01}, kF64);
  auto deviations = coef.mm(q.t());
  auto top = principal_directions(deviations, 2);
  ASSERT_EQ(top.sizes(), (at::IntArrayRef{2, 12}));
  EXPECT_TRUE(at::allclose(top.mm(top.t()), at::eye(2, kF64), 1e-10, 1e-12));
  // The top two span the first two directions (up to the small third).
  auto projected = top.mm(q.narrow(1, 0, 2));
  EXPECT_NEAR(at::linalg_det(projected).abs().item<double>(), 1.0, 1e-3);
  EXPECT_THROW(principal_directions(deviations, 31), InvalidArgument);
  EXPECT_THROW(principal_directions(deviations.narrow(1, 0, 12).mm(at::zeros({12, 12}, kF64)), 1), InvalidArgument);
}

TEST(Subspace, TheOriginIsNearestZeroSoTheWeightPriorRestrictsToAnIsotropicOne) {
  auto model = make_model("mlp:3", {2}, 1, at::kDouble);
  const int64_t P = model->layout().size;
  auto point = at::randn({P}, kF64);
  auto basis = random_directions(P, 4, 1, kF64);
  auto sub = restrict_to_subspace(model, point, basis, "random:4");
  const auto& s = sub->require<Subspace>("the test");
  EXPECT_LT(s.basis().mv(s.origin()).abs().max().item<double>(), 1e-12);
  auto z = sub->init_params(0);
  EXPECT_TRUE(at::allclose(s.origin() + basis.t().mv(z), point, 1e-12, 1e-12));  // starts at the point
  auto x = at::randn({5, 2}, kF64);
  auto z2 = at::randn({4}, kF64);
  auto theta = s.origin() + basis.t().mv(z2);
  EXPECT_TRUE(at::allclose(sub->forward(x, z2), model->forward(x, theta), 1e-12, 1e-12));
  EXPECT_NEAR(theta.pow(2).sum().item<double>(), s.origin().pow(2).sum().item<double>() + z2.pow(2).sum().item<double>(),
              1e-10);
  EXPECT_THROW(restrict_to_subspace(model, point, random_directions(P, 2, 1, kF64).narrow(1, 0, P - 1), "x"),
               InvalidArgument);
}

// NUTS in a K = P subspace of Bayesian linear regression: the draws mapped back to the weights
// follow the closed-form posterior, and the fit saves and loads.
void expect_full_rank_subspace_posterior(const std::string& subset, const std::string& sampler = "nuts") {
  auto req = conjugate_request(sampler + ":chains=2,warmup=300,draws=1000,subset=" + subset, 50, 1e-2);
  auto f = fit(req);
  const auto& s = f.model->require<Subspace>("the test");
  ASSERT_EQ(s.basis().size(0), 4);
  // Building the subspace (for pca, a SWAG run) is part of the fit's time.
  const double building = f.info.at("subspace_seconds").get<double>();
  EXPECT_GT(building, 0.0);
  EXPECT_GT(f.info.at("fit_seconds").get<double>(), building);
  auto z = dynamic_cast<const ParticlePosterior&>(*f.posterior).particles();
  auto draws = s.origin().unsqueeze(0) + z.mm(s.basis());
  auto [mean, cov] = exact_linear_posterior(req.data.fit);
  auto c = draws - draws.mean(0);
  auto sample_cov = c.t().mm(c) / (draws.size(0) - 1);
  auto sd = cov.diag().sqrt();
  EXPECT_LT(((draws.mean(0) - mean) / sd).abs().max().item<double>(), 4.0 / std::sqrt(1000.0)) << subset;
  EXPECT_TRUE(at::allclose(sample_cov.diag(), cov.diag(), 0.15, 0)) << subset << "\n" << sample_cov.diag() << "\n"
                                                                     << cov.diag();

  auto file = (std::filesystem::temp_directory_path() / ("credence-subspace-" + std::to_string(::getpid()) + ".crd"))
                  .string();
  f.save(file, true);
  auto loaded = FittedModel::load(file);
  std::filesystem::remove(file);
  EXPECT_TRUE(at::allclose(loaded.predict(req.data.fit).mean, f.predict(req.data.fit).mean, 1e-10, 1e-12));
  EXPECT_EQ(loaded.model->require<Subspace>("the test").description(), subset);
}

TEST(Subspace, NutsInAFullRankRandomSubspaceIsTheConjugatePosterior) {
  expect_full_rank_subspace_posterior("random:4");
}

TEST(Subspace, NutsInAFullRankPcaSubspaceIsTheConjugatePosterior) { expect_full_rank_subspace_posterior("pca:4"); }

TEST(Subspace, EllipticalSliceSamplingInAFullRankPcaSubspaceIsTheConjugatePosterior) {
  expect_full_rank_subspace_posterior("pca:4", "ess");
}

// With a learned noise level, NUTS keeps it at the MAP's in a subspace (the weights off it stay
// at a point too) unless noise=sample asks otherwise; on the full network it samples it.
TEST(Subspace, NutsKeepsTheMapsNoiseInASubspaceByDefault) {
  auto noise_draws = [](const std::string& method) {
    auto req = conjugate_request(method, 20, 1e-2);
    req.likelihood = "gaussian";
    return dynamic_cast<const ParticlePosterior&>(*fit(req).posterior).log_sigma().defined();
  };
  EXPECT_FALSE(noise_draws("nuts:chains=1,warmup=20,draws=20,subset=random:2"));
  EXPECT_TRUE(noise_draws("nuts:chains=1,warmup=20,draws=20,subset=random:2,noise=sample"));
  EXPECT_TRUE(noise_draws("nuts:chains=1,warmup=20,draws=20"));
  EXPECT_FALSE(noise_draws("nuts:chains=1,warmup=20,draws=20,noise=map"));
}

TEST(Subspace, OnlySamplersAndViRunInASubspace) {
  EXPECT_THROW(fit(conjugate_request("laplace:subset=pca:2", 5, 1e-2)), NotSupported);
  EXPECT_THROW(fit(conjugate_request("nuts:subset=pca:0", 5, 1e-2)), InvalidArgument);
}

}  // namespace
}  // namespace credence
