// Deep ensembles trained as one stacked computation.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include "credence/credence.h"
#include "problems.h"

namespace credence {

TEST(Ensemble, OneMemberIsMap) {
  auto map = fit(moons_request("map"));
  auto one = fit(moons_request("ensemble:members=1"));
  EXPECT_TRUE(at::allclose(particles_of(one), particles_of(map), 1e-5, 1e-6));
}

TEST(Ensemble, MembersTrainIndependently) {
  auto three = particles_of(fit(moons_request("ensemble:members=3")));
  ASSERT_EQ(three.size(0), 3);
  EXPECT_FALSE(at::allclose(three[0], three[1]));
  // Member 0 trained beside two others ends where it ends alone (MAP): the stacked members do not
  // interact (elementwise Adam, per-member losses).
  auto map = particles_of(fit(moons_request("map")));
  EXPECT_TRUE(at::allclose(three[0], map[0], 1e-5, 1e-6));
  EXPECT_TRUE(at::equal(particles_of(fit(moons_request("ensemble:members=3"))), three));  // deterministic
}

TEST(Ensemble, MembersShuffleTheirOwnData) {
  auto own = particles_of(fit(moons_request("ensemble:members=3")));
  auto shared = particles_of(fit(moons_request("ensemble:members=3,shuffle=shared")));
  // Member 0 follows the driver's order (it is MAP either way); the others differ.
  EXPECT_TRUE(at::allclose(own[0], shared[0], 1e-5, 1e-6));
  EXPECT_FALSE(at::allclose(own[1], shared[1], 1e-3, 1e-4));
}

TEST(Ensemble, RegressionPredictiveIsTheMixture) {
  FitRequest req;
  req.data = load_data("synthetic:sine?n=200");
  req.model = "mlp:20?act=tanh";
  req.likelihood = "heteroscedastic";
  req.train.epochs = 30;
  req.train.quiet = true;
  req.method = "ensemble:members=4";
  auto f = fit(req);
  auto test = load_data("synthetic:sine?n=50&part=test").fit;
  auto p = f.predict(test);
  ASSERT_TRUE(p.sample_mean.defined());
  EXPECT_EQ(p.sample_mean.size(0), 4);
  // Law of total variance over the members.
  auto expected = p.sample_var.mean(0) + (p.sample_mean - p.mean).pow(2).mean(0);
  EXPECT_TRUE(at::allclose(p.var, expected, 1e-5, 1e-6));
  EXPECT_THROW(fit(moons_request("ensemble:members=0")), InvalidArgument);
}

}  // namespace credence
