// forward_dropout (MC dropout's training forward): exact masks against a hand-written linear
// layer, mask statistics through identity weights, and moments against their closed forms.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cmath>

#include "credence/core/error.h"
#include "credence/core/rng.h"
#include "credence/model/model.h"

namespace credence {
namespace {

const auto kF64 = at::TensorOptions().dtype(at::kDouble);

torch::Tensor block(const Model& m, const torch::Tensor& theta, const std::string& name) {
  const auto& b = m.layout().find(name);
  return theta.narrow(-1, b.offset, b.numel).view(b.shape);
}

// Parameters with identity weights and zero biases, so outputs show the product of the masks.
torch::Tensor identity_params(const Model& m, int64_t width) {
  auto theta = at::zeros({m.layout().size}, kF64);
  for (const auto& name : m.require<DropoutForward>("test").dropout_blocks()) block(m, theta, name).copy_(at::eye(width, kF64));
  return theta;
}

TEST(DropoutForward, ZeroRateEqualsForward) {
  auto mlp = make_model("mlp:8,4?act=tanh", {3}, 2, torch::kFloat64);
  auto x = at::randn({7, 3}, kF64);
  auto theta = mlp->init_params(1), thetas = at::stack({theta, mlp->init_params(2)});
  EXPECT_TRUE(at::allclose(mlp->require<DropoutForward>("test").forward_dropout(x, theta, 0.0, 5), mlp->forward(x, theta), 0, 1e-14));
  EXPECT_TRUE(at::allclose(mlp->require<DropoutForward>("test").forward_dropout(x, thetas, 0.0, 5), mlp->forward(x, thetas), 0, 1e-14));
  auto cnn = make_model("cnn:lenet", {1, 28, 28}, 10, torch::kFloat64);
  auto img = at::rand({2, 1, 28, 28}, kF64);
  auto cthetas = at::stack({cnn->init_params(1), cnn->init_params(2)});
  EXPECT_TRUE(at::allclose(cnn->require<DropoutForward>("test").forward_dropout(img, cthetas, 0.0, 5), cnn->forward(img, cthetas), 0, 1e-12));
}

TEST(DropoutForward, LinearModelEqualsHandDrawnMasks) {
  auto m = make_model("mlp:", {5}, 3, torch::kFloat64);
  auto x = at::randn({7, 5}, kF64);
  const double p = 0.3;
  const uint64_t key = rng_key(9, Stream::Noise, 4);
  // The documented draw: one keep-mask [N, in] (or [S, N, in]) per linear layer from cpu_generator(key).
  auto theta = m->init_params(3);
  auto gen = cpu_generator(key);
  auto keep = at::empty({7, 5}, kF64).bernoulli_(1 - p, gen);
  auto expected = at::matmul(x * keep / (1 - p), block(*m, theta, "layer0.weight").t()) + block(*m, theta, "layer0.bias");
  EXPECT_TRUE(at::allclose(m->require<DropoutForward>("test").forward_dropout(x, theta, p, key), expected, 1e-12, 1e-12));
  EXPECT_GT(keep.eq(0).sum().item<int64_t>(), 0);  // some inputs were dropped

  auto thetas = at::stack({theta, m->init_params(4)});
  auto sgen = cpu_generator(key);
  auto skeep = at::empty({2, 7, 5}, kF64).bernoulli_(1 - p, sgen);
  auto out = m->require<DropoutForward>("test").forward_dropout(x, thetas, p, key);
  ASSERT_EQ(out.sizes(), (std::vector<int64_t>{2, 7, 3}));
  for (int64_t s = 0; s < 2; ++s) {
    auto W = block(*m, thetas[s], "layer0.weight"), b = block(*m, thetas[s], "layer0.bias");
    EXPECT_TRUE(at::allclose(out[s], at::matmul(x * skeep[s] / (1 - p), W.t()) + b, 1e-12, 1e-12)) << s;
  }
}

// A shard of a data-parallel minibatch gets its rows' masks of the whole minibatch.
TEST(DropoutForward, ShardTakesItsRowsOfTheWholeBatchMasks) {
  auto m = make_model("mlp:8,8", {5}, 3, torch::kFloat64);
  auto x = at::randn({9, 5}, kF64);
  auto theta = m->init_params(2);
  auto thetas = at::stack({theta, m->init_params(3)});
  const uint64_t key = rng_key(1, Stream::Noise, 2);
  for (const auto& t : {theta, thetas}) {
    auto whole = m->require<DropoutForward>("test").forward_dropout(x, t, 0.4, key);
    auto shard = m->require<DropoutForward>("test").forward_dropout(x.narrow(0, 4, 3), t, 0.4, key, 4, 9);
    EXPECT_TRUE(at::allclose(shard, whole.narrow(-2, 4, 3), 1e-12, 1e-12)) << t.dim();
  }
  EXPECT_THROW(m->require<DropoutForward>("test").forward_dropout(x.narrow(0, 4, 3), theta, 0.4, key, 7, 9), InvalidArgument);
}

TEST(DropoutForward, MasksPerExampleBeforeEveryLinearLayer) {
  const int64_t D = 50, N = 200;
  const double p = 0.25;
  auto x = at::ones({N, D}, kF64);
  // Linear, identity weights: each output is one input's keep-mask, 0 or 1/(1-p).
  auto lin = make_model("mlp:", {D}, D, torch::kFloat64);
  auto out = lin->require<DropoutForward>("test").forward_dropout(x, identity_params(*lin, D), p, 11);
  auto zero = out.eq(0);
  EXPECT_TRUE((zero | (out - 1 / (1 - p)).abs().lt(1e-12)).all().item<bool>());
  const double sd = std::sqrt(p * (1 - p) / (N * D));
  EXPECT_NEAR(zero.to(at::kDouble).mean().item<double>(), p, 4 * sd);
  EXPECT_FALSE(at::equal(out[0], out[1]));  // fresh masks per example
  EXPECT_TRUE(at::equal(out, lin->require<DropoutForward>("test").forward_dropout(x, identity_params(*lin, D), p, 11)));
  EXPECT_FALSE(at::equal(out, lin->require<DropoutForward>("test").forward_dropout(x, identity_params(*lin, D), p, 12)));

  // Two linear layers (relu passes the positive values): an output survives both masks.
  auto mlp = make_model("mlp:50", {D}, D, torch::kFloat64);
  EXPECT_EQ(mlp->require<DropoutForward>("test").dropout_blocks(), (std::vector<std::string>{"layer0.weight", "layer1.weight"}));
  auto out2 = mlp->require<DropoutForward>("test").forward_dropout(x, identity_params(*mlp, D), p, 11);
  auto zero2 = out2.eq(0);
  EXPECT_TRUE((zero2 | (out2 - 1 / ((1 - p) * (1 - p))).abs().lt(1e-12)).all().item<bool>());
  const double q = 1 - (1 - p) * (1 - p);
  EXPECT_NEAR(zero2.to(at::kDouble).mean().item<double>(), q, 4 * std::sqrt(q * (1 - q) / (N * D)));
}

TEST(DropoutForward, LinearMomentsMatchClosedForm) {
  // out = sum_j W_j x_j m_j / (1-p) + b with m_j ~ Bernoulli(1-p): mean = forward,
  // variance = p / (1-p) * sum_j W_j^2 x_j^2. S stacked copies draw S independent mask sets.
  auto m = make_model("mlp:", {5}, 1, torch::kFloat64);
  auto theta = m->init_params(2);
  auto x = at::randn({4, 5}, kF64);
  const double p = 0.2;
  const int64_t S = 4000;
  auto out = m->require<DropoutForward>("test").forward_dropout(x, theta.expand({S, theta.size(0)}), p, 3).squeeze(-1);  // [S, N]
  auto W = block(*m, theta, "layer0.weight")[0];
  auto var = (x.pow(2) * W.pow(2)).sum(1) * (p / (1 - p));
  auto err = (out.mean(0) - m->forward(x, theta).squeeze(-1)).abs();
  EXPECT_TRUE((err < 5 * (var / S).sqrt()).all().item<bool>()) << err << var;
  EXPECT_TRUE(((out.var(0) / var - 1).abs() < 0.15).all().item<bool>()) << out.var(0) << var;
}

TEST(DropoutForward, SitesAndErrors) {
  auto cnn = make_model("cnn:lenet", {1, 28, 28}, 10);
  EXPECT_EQ(cnn->require<DropoutForward>("test").dropout_blocks(), (std::vector<std::string>{"layer2.weight", "layer3.weight", "layer4.weight"}));
  auto m = make_model("mlp:4", {3}, 2);
  auto x = at::randn({2, 3});
  EXPECT_THROW(m->require<DropoutForward>("test").forward_dropout(x, m->init_params(0), 1.0, 0), InvalidArgument);
  EXPECT_THROW(m->require<DropoutForward>("test").forward_dropout(x, m->init_params(0), -0.1, 0), InvalidArgument);
  auto ts = make_model("torchscript:" + std::string(CREDENCE_TEST_DATA_DIR) + "/tiny_plain.pt", {3}, 2);
  EXPECT_EQ(ts->find<DropoutForward>(), nullptr);
  EXPECT_THROW(ts->require<DropoutForward>("test").forward_dropout(x, ts->init_params(0), 0.1, 0), NotSupported);
}

}  // namespace
}  // namespace credence
