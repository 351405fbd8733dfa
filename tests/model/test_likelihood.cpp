// Observation models: NLLs against hand formulas, parsing, and the predictive's moments.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cmath>
#include <string>
#include <vector>

#include "credence/core/error.h"
#include "credence/likelihood/likelihood.h"

namespace credence {
namespace {

const auto kF64 = at::TensorOptions().dtype(at::kDouble);
const double kLog2Pi = std::log(2.0 * M_PI);

Dataset regression_data() {
  Dataset d;
  d.task = Task::Regression;
  d.name = "reg";
  return d;
}
Dataset classification_data(int64_t classes) {
  Dataset d;
  d.task = Task::Classification;
  d.num_classes = classes;
  d.name = "cls";
  return d;
}

TEST(Likelihood, ParseNamesAndDefaults) {
  auto reg = regression_data();
  auto l = Likelihood::parse("", reg);
  EXPECT_EQ(l.kind, LikelihoodKind::Gaussian);
  EXPECT_TRUE(l.learn_sigma);
  EXPECT_EQ(l.name(), "gaussian");
  auto fixed = Likelihood::parse("gaussian?sigma=0.25", reg);
  EXPECT_FALSE(fixed.learn_sigma);
  EXPECT_DOUBLE_EQ(fixed.sigma, 0.25);
  EXPECT_EQ(Likelihood::parse(fixed.name(), reg).sigma, 0.25);  // the name round-trips
  EXPECT_EQ(Likelihood::parse("heteroscedastic", reg).output_dim(reg), 2);
  auto c3 = classification_data(3);
  EXPECT_EQ(Likelihood::parse("", c3).kind, LikelihoodKind::Categorical);
  EXPECT_EQ(Likelihood::parse("", c3).output_dim(c3), 3);
  auto c2 = classification_data(2);
  EXPECT_EQ(Likelihood::parse("bernoulli", c2).output_dim(c2), 1);
  EXPECT_EQ(Likelihood::parse("bernoulli", c2).task(), Task::Classification);

  EXPECT_THROW(Likelihood::parse("bernoulli", c3), InvalidArgument);
  EXPECT_THROW(Likelihood::parse("categorical", reg), InvalidArgument);
  EXPECT_THROW(Likelihood::parse("gaussian", c2), InvalidArgument);
  EXPECT_THROW(Likelihood::parse("gaussian?sigma=-1", reg), InvalidArgument);
  EXPECT_THROW(Likelihood::parse("gaussian?sigma=abc", reg), InvalidArgument);
  EXPECT_THROW(Likelihood::parse("gaussian?scale=1", reg), InvalidArgument);
  EXPECT_THROW(Likelihood::parse("poisson", reg), InvalidArgument);
  // Options go after '?': a body such as "gaussian:sigma=0.5" must not silently learn sigma.
  EXPECT_THROW(Likelihood::parse("gaussian:sigma=0.5", reg), InvalidArgument);
  EXPECT_THROW(Likelihood::parse("categorical:3", c3), InvalidArgument);
}

TEST(Likelihood, GaussianFixedSigmaNllByHand) {
  Likelihood l = Likelihood::parse("gaussian?sigma=0.5", regression_data());
  auto out = at::tensor({1.0, 2.0, 0.5}, kF64).view({3, 1});
  auto y = at::tensor({1.5, 1.0, 0.0}, kF64);
  // residuals -0.5, 1, 0.5: sum r^2 = 1.5; 0.5 * 1.5 / 0.25 = 3; plus 3 (log 0.5 + log(2 pi)/2)
  double expected = 3.0 + 3.0 * (std::log(0.5) + 0.5 * kLog2Pi);
  EXPECT_NEAR(l.nll(out, y).item<double>(), expected, 1e-12);
  EXPECT_NEAR(expected, 3.677374057, 1e-8);
  // log_sigma overrides sigma: sigma = 2 -> 0.5 * 1.5 / 4 + 3 (log 2 + log(2 pi)/2)
  auto ls = at::full({}, std::log(2.0), kF64);
  EXPECT_NEAR(l.nll(out, y, ls).item<double>(), 0.1875 + 3.0 * (std::log(2.0) + 0.5 * kLog2Pi), 1e-12);
  // stacked: one value per sample
  auto stacked = at::stack({out, out + 1.0});
  auto per = l.nll_stacked(stacked, y);
  ASSERT_EQ(per.sizes(), (std::vector<int64_t>{2}));
  EXPECT_NEAR(per[0].item<double>(), expected, 1e-12);
  // residuals 0.5, 2, 1.5: sum r^2 = 6.5 -> 0.5 * 6.5 / 0.25 = 13
  EXPECT_NEAR(per[1].item<double>(), 13.0 + 3.0 * (std::log(0.5) + 0.5 * kLog2Pi), 1e-12);
}

TEST(Likelihood, HeteroscedasticNllByHand) {
  Likelihood l = Likelihood::parse("heteroscedastic", regression_data());
  auto out = at::tensor({0.0, 0.3, 1.0, -1.0}, kF64).view({2, 2});
  auto y = at::tensor({0.5, 2.0}, kF64);
  double expected = 0.0;
  const double mu[2] = {0.0, 1.0}, raw[2] = {0.3, -1.0}, yy[2] = {0.5, 2.0};
  for (int i = 0; i < 2; ++i) {
    double var = std::log1p(std::exp(raw[i])) + 1e-6;
    expected += 0.5 * (yy[i] - mu[i]) * (yy[i] - mu[i]) / var + 0.5 * std::log(var) + 0.5 * kLog2Pi;
  }
  EXPECT_NEAR(l.nll(out, y).item<double>(), expected, 1e-12);
}

TEST(Likelihood, CategoricalNllIsMinusSumLogSoftmax) {
  Likelihood l = Likelihood::parse("categorical", classification_data(3));
  auto out = at::tensor({1.0, 2.0, 0.5, -1.0, 0.0, 3.0}, kF64).view({2, 3});
  auto y = at::tensor({2, 0}, at::kLong);
  auto lse = [](double a, double b, double c) { return std::log(std::exp(a) + std::exp(b) + std::exp(c)); };
  double expected = -(0.5 - lse(1.0, 2.0, 0.5)) - (-1.0 - lse(-1.0, 0.0, 3.0));
  EXPECT_NEAR(l.nll(out, y).item<double>(), expected, 1e-12);
  auto per = l.nll_stacked(at::stack({out, at::zeros_like(out)}), y);
  EXPECT_NEAR(per[0].item<double>(), expected, 1e-12);
  EXPECT_NEAR(per[1].item<double>(), 2.0 * std::log(3.0), 1e-12);  // uniform over 3 classes
}

TEST(Likelihood, BernoulliNllByHand) {
  Likelihood l = Likelihood::parse("bernoulli", classification_data(2));
  auto out = at::tensor({2.0, -0.5, 0.0}, kF64).view({3, 1});
  auto y = at::tensor({1, 1, 0}, at::kLong);
  auto sig = [](double f) { return 1.0 / (1.0 + std::exp(-f)); };
  double expected = -std::log(sig(2.0)) - std::log(sig(-0.5)) - std::log(1.0 - sig(0.0));
  EXPECT_NEAR(l.nll(out, y).item<double>(), expected, 1e-12);
  // its predictive puts sigmoid(f) on class 1
  auto p = l.predictive(out.unsqueeze(0), 0.0, 1.0);
  EXPECT_NEAR(p.probs[0][1].item<double>(), sig(2.0), 1e-12);
  EXPECT_NEAR(p.probs[1][0].item<double>(), 1.0 - sig(-0.5), 1e-12);
}

// The written-out gradients against autograd through nll(), for every kind, twice through the same
// buffer (the second call must overwrite, not accumulate).
TEST(Likelihood, NllAndGradEqualAutograd) {
  at::manual_seed(3);
  const int64_t n = 7;
  struct Case {
    std::string name;
    Dataset data;
    torch::Tensor y;
  };
  std::vector<Case> cases = {
      {"gaussian", regression_data(), at::randn({n}, kF64)},
      {"gaussian?sigma=0.3", regression_data(), at::randn({n}, kF64)},
      {"heteroscedastic", regression_data(), at::randn({n}, kF64)},
      {"categorical", classification_data(4), at::randint(0, 4, {n}, at::kLong)},
      {"bernoulli", classification_data(2), at::randint(0, 2, {n}, at::kLong)}};
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    auto l = Likelihood::parse(c.name, c.data);
    torch::Tensor d_out;
    for (int call = 0; call < 2; ++call) {
      auto out = at::randn({n, l.output_dim(c.data)}, kF64).requires_grad_(true);
      const double log_sigma = l.learn_sigma ? -0.4 + call : std::log(l.sigma);
      auto ls = at::full({}, log_sigma, kF64).requires_grad_(true);
      auto loss = l.nll(out, c.y, ls);
      loss.backward();
      double d_log_sigma = -1.0;
      const double value = l.nll_and_grad(out.detach(), c.y, log_sigma, d_out, &d_log_sigma);
      EXPECT_NEAR(value, loss.item<double>(), 1e-10);
      ASSERT_EQ(d_out.sizes(), out.sizes());
      EXPECT_TRUE(at::allclose(d_out, out.grad(), 1e-10, 1e-12)) << d_out - out.grad();
      const double expected_ls = l.kind == LikelihoodKind::Gaussian ? ls.grad().item<double>() : 0.0;
      EXPECT_NEAR(d_log_sigma, expected_ls, 1e-10);
    }
  }
}

TEST(Likelihood, RegressionPredictiveIsLawOfTotalVarianceInOriginalUnits) {
  Likelihood l = Likelihood::parse("gaussian?sigma=0.5", regression_data());
  // S = 2 samples, N = 2 points, standardized outputs; y_mean 10, y_std 2.
  auto out = at::tensor({0.0, 1.0, 1.0, -1.0}, kF64).view({2, 2, 1});
  auto p = l.predictive(out, 10.0, 2.0);
  // component means: s0 = (10, 12), s1 = (12, 8); noise var = (0.5 * 2)^2 = 1
  EXPECT_NEAR(p.mean[0].item<double>(), 11.0, 1e-12);
  EXPECT_NEAR(p.mean[1].item<double>(), 10.0, 1e-12);
  EXPECT_NEAR(p.var[0].item<double>(), 1.0 + 1.0, 1e-12);
  EXPECT_NEAR(p.var[1].item<double>(), 1.0 + 4.0, 1e-12);
  ASSERT_TRUE(p.sample_mean.defined());
  EXPECT_NEAR(p.sample_mean[1][1].item<double>(), 8.0, 1e-12);
  EXPECT_NEAR(p.sample_var[0][0].item<double>(), 1.0, 1e-12);
  EXPECT_EQ(p.task, Task::Regression);

  // weights (0.25, 0.75)
  auto w = l.predictive(out, 10.0, 2.0, at::tensor({0.25, 0.75}, kF64));
  EXPECT_NEAR(w.mean[0].item<double>(), 11.5, 1e-12);
  EXPECT_NEAR(w.var[0].item<double>(), 1.0 + 0.25 * 2.25 + 0.75 * 0.25, 1e-12);
  EXPECT_NEAR(w.mean[1].item<double>(), 9.0, 1e-12);
  EXPECT_NEAR(w.var[1].item<double>(), 1.0 + 0.25 * 9.0 + 0.75 * 1.0, 1e-12);

  // a single sample keeps only the moments
  auto one = l.predictive(out.narrow(0, 0, 1), 10.0, 2.0);
  EXPECT_FALSE(one.sample_mean.defined());
  EXPECT_NEAR(one.var[1].item<double>(), 1.0, 1e-12);
}

TEST(Likelihood, HeteroscedasticPredictiveScalesVariance) {
  Likelihood l = Likelihood::parse("heteroscedastic", regression_data());
  auto out = at::tensor({0.5, 0.0}, kF64).view({1, 1, 2});
  auto p = l.predictive(out, -1.0, 3.0);
  EXPECT_NEAR(p.mean[0].item<double>(), 0.5, 1e-12);
  EXPECT_NEAR(p.var[0].item<double>(), (std::log(2.0) + 1e-6) * 9.0, 1e-12);
}

TEST(Likelihood, CategoricalPredictiveAveragesSoftmax) {
  Likelihood l = Likelihood::parse("categorical", classification_data(2));
  auto out = at::tensor({0.0, 0.0, 0.0, std::log(3.0)}, kF64).view({2, 1, 2});
  auto p = l.predictive(out, 0.0, 1.0);
  // sample 0: (0.5, 0.5); sample 1: (0.25, 0.75)
  EXPECT_NEAR(p.probs[0][0].item<double>(), 0.375, 1e-12);
  EXPECT_NEAR(p.probs[0][1].item<double>(), 0.625, 1e-12);
  ASSERT_TRUE(p.sample_probs.defined());
  EXPECT_NEAR(p.sample_probs[1][0][1].item<double>(), 0.75, 1e-12);
}

}  // namespace
}  // namespace credence
