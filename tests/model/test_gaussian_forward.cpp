// forward_gaussian (per-example Gaussian weights): zero spread equals forward; a linear layer's
// outputs have the closed-form mean and variance; through a whole network (local
// reparameterization and Flipout) each example's outputs match independent weight draws.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cmath>

#include "credence/core/error.h"
#include "credence/core/rng.h"
#include "credence/model/model.h"

namespace credence {
namespace {

const auto kF64 = at::TensorOptions().dtype(at::kDouble);

TEST(GaussianForward, ZeroSpreadEqualsForward) {
  auto mlp = make_model("mlp:8,4", {3}, 2, torch::kFloat64);
  auto x = at::randn({5, 3}, kF64);
  auto theta = mlp->init_params(1);
  EXPECT_TRUE(at::allclose(mlp->require<GaussianForward>("test").forward_gaussian(x, theta, at::zeros_like(theta), 3), mlp->forward(x, theta), 0, 1e-12));
  auto cnn = make_model("cnn:lenet", {1, 28, 28}, 10, torch::kFloat64);
  auto img = at::rand({2, 1, 28, 28}, kF64);
  auto ct = cnn->init_params(1);
  EXPECT_TRUE(at::allclose(cnn->require<GaussianForward>("test").forward_gaussian(img, ct, at::zeros_like(ct), 3), cnn->forward(img, ct), 0, 1e-12));
}

TEST(GaussianForward, LinearLayerMomentsByHand) {
  // One linear layer, 2 inputs -> 1 output: y = w . x + b with w ~ N(m_w, s_w^2), b ~ N(m_b, s_b^2):
  // mean m_w . x + m_b, variance s_w^2 . x^2 + s_b^2. x = (1, -2), m = (0.5, 0.25, 0.1),
  // s = (0.3, 0.2, 0.4): mean 0.5 - 0.5 + 0.1 = 0.1; variance 0.09 + 0.16 + 0.16 = 0.41.
  auto lin = make_model("mlp:", {2}, 1, torch::kFloat64);
  const int64_t n = 200000;
  auto x = at::tensor({1.0, -2.0}, kF64).expand({n, 2}).contiguous();
  auto y = lin->require<GaussianForward>("test").forward_gaussian(x, at::tensor({0.5, 0.25, 0.1}, kF64), at::tensor({0.3, 0.2, 0.4}, kF64), 9);
  const double mean = y.mean().item<double>(), var = y.var().item<double>();
  EXPECT_NEAR(mean, 0.1, 4 * std::sqrt(0.41 / n));
  EXPECT_NEAR(var, 0.41, 4 * 0.41 * std::sqrt(2.0 / n));
  // Rows are independent draws: neighbouring rows are uncorrelated.
  auto a = y.narrow(0, 0, n - 1).squeeze(1) - mean, b = y.narrow(0, 1, n - 1).squeeze(1) - mean;
  EXPECT_NEAR((a * b).mean().item<double>() / var, 0.0, 4 / std::sqrt(static_cast<double>(n)));
}

// Per example, the outputs' mean and variance under forward_gaussian equal those under
// independent whole-network draws (the same distribution, estimated two ways).
void expect_same_marginals(const Model& model, const torch::Tensor& one_input, double spread, int64_t n) {
  auto mean = model.init_params(4);
  auto sd = at::full_like(mean, spread);
  std::vector<int64_t> shape = one_input.sizes().vec();
  shape.insert(shape.begin(), n);
  auto x = one_input.unsqueeze(0).expand(shape).contiguous();
  auto local = model.require<GaussianForward>("test").forward_gaussian(x, mean, sd, 21);  // [n, O]
  auto thetas = mean + sd * keyed_randn({n, mean.size(0)}, 22, kF64);
  auto whole = model.forward(one_input.unsqueeze(0), thetas).squeeze(1);  // [n, O]
  auto m1 = local.mean(0), m2 = whole.mean(0), v1 = local.var(0), v2 = whole.var(0);
  auto se_mean = ((v1 + v2) / n).sqrt();
  EXPECT_TRUE(((m1 - m2).abs() < 4.5 * se_mean).all().item<bool>()) << m1 << m2;
  // Variance estimates: relative standard error about sqrt(2 / n) each (more with heavy tails).
  auto rel = (v1 / v2 - 1).abs();
  EXPECT_LT(rel.max().item<double>(), 8 * std::sqrt(2.0 / n)) << v1 << v2;
  EXPECT_GT(v2.min().item<double>(), 1e-4) << "spread too small for the test to mean anything";
}

TEST(GaussianForward, MlpMatchesWholeNetworkDraws) {
  auto mlp = make_model("mlp:16,8", {3}, 2, torch::kFloat64);
  expect_same_marginals(*mlp, at::tensor({0.5, -1.0, 2.0}, kF64), 0.2, 20000);
}

TEST(GaussianForward, ConvFlipoutMatchesWholeNetworkDraws) {
  auto cnn = make_model("cnn:lenet", {1, 28, 28}, 10, torch::kFloat64);
  auto gen = cpu_generator(5);
  expect_same_marginals(*cnn, at::rand({1, 28, 28}, gen, kF64), 0.05, 1000);
}

TEST(GaussianForward, RefusesBadShapes) {
  auto mlp = make_model("mlp:4", {3}, 2, torch::kFloat64);
  auto theta = mlp->init_params(1);
  EXPECT_THROW(mlp->require<GaussianForward>("test").forward_gaussian(at::randn({2, 3}, kF64), theta, at::zeros({3}, kF64), 1), InvalidArgument);
}

}  // namespace
}  // namespace credence

namespace credence {
namespace {

// The gradient of a batch's mean loss with respect to the posterior mean, over many noise draws:
// per-example weights (local reparameterization) average the noise over the batch, so its
// variance is far below that of one weight draw shared by the batch.
TEST(GaussianForward, PerExampleWeightsLowerGradientVariance) {
  auto mlp = make_model("mlp:16", {2}, 2, torch::kFloat64);
  auto gen = cpu_generator(3);
  auto x = at::randn({256, 2}, gen, kF64);
  auto y = (x.select(1, 0) > 0).to(at::kLong);
  auto m0 = mlp->init_params(1), sd = at::full_like(m0, 0.3);
  auto grad_of = [&](bool local, uint64_t key) {
    auto m = m0.clone().requires_grad_(true);
    auto out = local ? mlp->require<GaussianForward>("test").forward_gaussian(x, m, sd, key)
                     : mlp->forward(x, m + sd * keyed_randn({m0.size(0)}, key, kF64));
    at::cross_entropy_loss(out, y).backward();
    return m.grad().clone();
  };
  std::vector<torch::Tensor> local, shared;
  for (uint64_t k = 0; k < 200; ++k) {
    local.push_back(grad_of(true, k));
    shared.push_back(grad_of(false, 1000 + k));
  }
  auto var_local = at::stack(local).var(0).sum().item<double>();
  auto var_shared = at::stack(shared).var(0).sum().item<double>();
  EXPECT_LT(var_local, 0.5 * var_shared) << var_local << " vs " << var_shared;
  // Same expected gradient (both are unbiased for the same objective).
  auto diff = (at::stack(local).mean(0) - at::stack(shared).mean(0)).norm().item<double>();
  EXPECT_LT(diff, 4 * std::sqrt((var_local + var_shared) / 200));
}

}  // namespace
}  // namespace credence
