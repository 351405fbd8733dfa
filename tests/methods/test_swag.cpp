// SWAG and MultiSWAG: moments against brute-force recomputation, sampling covariance, persistence.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>

#include "credence/credence.h"
#include "credence/core/rng.h"
#include "credence/posterior/swag.h"

namespace credence {
namespace {

FitRequest request(const std::string& method, torch::Dtype dtype = torch::kFloat32) {
  FitRequest req;
  req.data = load_data("synthetic:moons?n=200", {dtype});  // 2 steps per epoch at batch 128
  req.dtype = dtype;
  req.model = "mlp:16";
  req.train.epochs = 8;
  req.train.quiet = true;
  req.method = method;
  return req;
}

const SwagPosterior& swag(const FittedModel& f) { return dynamic_cast<const SwagPosterior&>(*f.posterior); }

// The MAP parameters after req.train.epochs epochs: the SWAG trajectory, since both use Adam at the
// same lr from the same init and keyed shuffles.
torch::Tensor map_theta(FitRequest req) {
  req.method = "map";
  return dynamic_cast<const ParticlePosterior&>(*fit(req).posterior).particles()[0];
}

}  // namespace

TEST(Swag, MomentsEqualThoseOfTheStoredIterates) {
  const int64_t rank = 5, count = 30;
  SwagMoments moments(rank);
  std::vector<torch::Tensor> iterates;
  auto gen = cpu_generator(3);
  for (int64_t i = 0; i < count; ++i) {
    iterates.push_back(at::randn({2, 4}, gen, at::kFloat) + 1.5);
    moments.update(iterates.back());
  }
  auto all = at::stack(iterates).to(at::kDouble);  // [T, M, P]
  EXPECT_EQ(moments.count(), count);
  EXPECT_EQ(moments.mean().scalar_type(), at::kFloat);
  EXPECT_TRUE(at::allclose(moments.mean().to(at::kDouble), all.mean(0), 1e-6, 1e-6));
  EXPECT_TRUE(at::allclose(moments.variance().to(at::kDouble), all.var(0, /*unbiased=*/false), 1e-5, 1e-5));
  // Deviation i: iterate i minus the mean of iterates 0..i; the newest `rank` kept, oldest first.
  auto dev = moments.deviations().to(at::kDouble);
  ASSERT_EQ(dev.sizes(), (std::vector<int64_t>{2, rank, 4}));
  for (int64_t j = 0; j < rank; ++j) {
    int64_t i = count - rank + j;
    auto expected = all[i] - all.narrow(0, 0, i + 1).mean(0);
    EXPECT_TRUE(at::allclose(dev.select(1, j), expected, 1e-5, 1e-5)) << "column " << j;
  }
  SwagMoments diagonal(0);
  diagonal.update(iterates[0]);
  EXPECT_EQ(diagonal.deviations().sizes(), (std::vector<int64_t>{2, 0, 4}));
}

TEST(Swag, PosteriorHoldsTheMomentsOfTheEpochEndIterates) {
  // 8 epochs, start=0.5: collections after epochs 5..8, each the MAP fit with that many epochs.
  auto f = fit(request("swag:start=0.5", torch::kFloat64));
  std::vector<torch::Tensor> thetas;
  for (int64_t e = 5; e <= 8; ++e) {
    auto req = request("map", torch::kFloat64);
    req.train.epochs = e;
    thetas.push_back(map_theta(req));
  }
  auto all = at::stack(thetas);
  const auto& q = swag(f);
  ASSERT_EQ(q.means().size(0), 1);
  EXPECT_TRUE(at::allclose(q.means()[0], all.mean(0), 1e-9, 1e-10));
  EXPECT_TRUE(at::allclose(q.variances()[0], all.var(0, false), 1e-6, 1e-12));
  ASSERT_EQ(q.deviations().size(1), 4);
  for (int64_t i = 0; i < 4; ++i)
    EXPECT_TRUE(at::allclose(q.deviations()[0][i], all[i] - all.narrow(0, 0, i + 1).mean(0), 1e-6, 1e-10));
  EXPECT_DOUBLE_EQ(q.scale(), 0.5);
}

TEST(Swag, CollectRankAndLrFactor) {
  // 2 steps per epoch: collect=2 takes every step of the last 4 epochs; rank caps the columns.
  EXPECT_EQ(swag(fit(request("swag:collect=2"))).deviations().size(1), 8);
  EXPECT_EQ(swag(fit(request("swag:collect=2,rank=3"))).deviations().size(1), 3);
  EXPECT_EQ(swag(fit(request("swag:rank=0"))).deviations().size(1), 0);
  // start=0 switches the lr before the first step, so the run is MAP at lr * lr_factor; the last
  // iterate is the mean plus the last deviation.
  auto q = swag(fit(request("swag:start=0,lr_factor=0.5", torch::kFloat64)));
  auto last = q.means()[0] + q.deviations()[0][-1];
  auto req = request("map", torch::kFloat64);
  req.train.lr = 0.5 * 1e-3;  // half MAP's default step, which swag took
  EXPECT_TRUE(at::allclose(last, map_theta(req), 1e-9, 1e-10));
  EXPECT_FALSE(at::allclose(last, map_theta(request("map", torch::kFloat64)), 1e-4, 1e-6));
}

TEST(Swag, MultiSwagMembers) {
  auto one = swag(fit(request("swag")));
  auto single = swag(fit(request("multiswag:members=1")));
  EXPECT_TRUE(at::equal(single.means(), one.means()));
  EXPECT_TRUE(at::equal(single.variances(), one.variances()));
  EXPECT_TRUE(at::equal(single.deviations(), one.deviations()));
  auto three = swag(fit(request("multiswag:members=3")));
  ASSERT_EQ(three.means().size(0), 3);
  EXPECT_FALSE(at::allclose(three.means()[1], three.means()[2], 1e-2, 1e-3));
  // Member 0 trains beside the others exactly as alone (stacked members do not interact).
  EXPECT_TRUE(at::allclose(three.means()[0], one.means()[0], 1e-5, 1e-6));
}

TEST(Swag, SampleCovarianceIsScaledDiagonalPlusLowRank) {
  auto mean = at::tensor({1.0, -2.0, 0.5}, at::kDouble).view({1, 3});
  auto var = at::tensor({0.3, 1.0, 0.05}, at::kDouble).view({1, 3});
  auto dev = at::tensor({1.0, 0.5, -0.2, -0.4, 1.2, 0.3, 0.6, -0.9, 0.8}, at::kDouble).view({1, 3, 3});
  const double scale = 0.5;
  SwagPosterior q(mean, var, dev, scale);
  const int64_t n = 200000;
  auto s = q.sample(n, 11);
  ASSERT_EQ(s.sizes(), (std::vector<int64_t>{n, 3}));
  EXPECT_FALSE(q.weights().defined());  // one member: uniform
  auto d = dev[0];
  auto expected = scale * (at::diag(var[0]) + at::matmul(d.t(), d) / 2.0);
  auto centered = s - mean;
  auto cov = at::matmul(centered.t(), centered) / static_cast<double>(n);
  // Standard error of a covariance entry: sqrt((S_ii S_jj + S_ij^2) / n).
  auto dg = at::diag(expected);
  auto se = ((at::outer(dg, dg) + expected.pow(2)) / static_cast<double>(n)).sqrt();
  EXPECT_TRUE(at::all((cov - expected).abs() < 5 * se).item<bool>()) << cov << expected;
  EXPECT_TRUE(at::all((s.mean(0) - mean[0]).abs() < 5 * (dg / n).sqrt()).item<bool>());
  EXPECT_TRUE(at::equal(q.sample(4, 11), q.sample(4, 11)));

  // Two members: stratified n / M draws each, uniform weights.
  auto means2 = at::cat({mean, mean + 100});
  SwagPosterior q2(means2, var.repeat({2, 1}), dev.repeat({2, 1, 1}), scale);
  auto s2 = q2.sample(10, 1);
  ASSERT_EQ(s2.size(0), 10);
  EXPECT_EQ((s2.select(1, 0) > 50).sum().item<int64_t>(), 5);
  EXPECT_TRUE(at::allclose(q2.weights(), at::full({10}, 0.1, at::kDouble)));
  EXPECT_EQ(q2.sample(1, 1).size(0), 2);  // at least one per member
}

TEST(Swag, SaveLoadGivesIdenticalPredictions) {
  char dir[] = "/tmp/credence-swagXXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  auto test = load_data("synthetic:moons?part=test&n=30").fit;
  for (std::string method : {"multiswag:members=2,rank=3", "swag:rank=0"}) {
    auto req = request(method);
    req.data = load_data("synthetic:moons?n=64");
    req.train.epochs = 4;
    auto f = fit(req);
    std::string path = std::string(dir) + "/swag.crd";
    f.save(path, /*overwrite=*/true);
    auto g = FittedModel::load(path);
    EXPECT_EQ(g.posterior->kind(), "swag");
    EXPECT_DOUBLE_EQ(swag(g).scale(), 0.5);
    EXPECT_TRUE(at::equal(swag(g).deviations(), swag(f).deviations())) << method;
    EXPECT_TRUE(at::equal(f.predict(test).probs, g.predict(test).probs)) << method;
    std::remove(path.c_str());
  }
  rmdir(dir);
}

TEST(Swag, BadOptionsAreRefused) {
  for (std::string spec : {"swag:start=1", "swag:start=-0.1", "swag:rank=1", "swag:rank=-2", "swag:collect=0",
                           "swag:scale=0", "swag:lr_factor=-1", "multiswag:members=0", "swag:members=2"})
    EXPECT_THROW(resolve_method(spec), InvalidArgument) << spec;
  EXPECT_NO_THROW(resolve_method("multiswag:members=2,rank=0,start=0"));
  auto req = request("swag:start=0.5");
  req.train.epochs = 1;  // collection would start at epoch 1 of 1
  try {
    fit(req);
    FAIL() << "fit with no collected iterate did not throw";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("raise --epochs"), std::string::npos) << e.what();
  }
  EXPECT_THROW(fit(request("swag:collect=3")), InvalidArgument);  // 2 steps per epoch
}

}  // namespace credence
