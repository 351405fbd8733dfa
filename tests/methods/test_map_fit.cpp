// MAP through the fit driver: the closed-form ridge solution for a linear model, learned noise,
// a nonlinear classifier, and seeding.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cmath>

#include "credence/core/error.h"
#include "credence/data/standardizer.h"
#include "credence/eval/metrics.h"
#include "credence/fit/fit.h"

namespace credence {
namespace {

const char* kLinear = "synthetic:linear?n=200&noise=0.1";

FitRequest linear_request(const std::string& likelihood, const std::string& method, double lr, int64_t epochs,
                          const std::string& prior) {
  FitRequest req;
  req.data = load_data(kLinear, {torch::kFloat64});
  req.model = "mlp:";
  req.method = method;
  req.likelihood = likelihood;
  req.dtype = torch::kFloat64;
  req.train.epochs = epochs;
  req.train.batch_size = 200;  // full batch: plain (momentum) gradient descent on the objective
  req.train.lr = lr;
  req.train.prior = prior;
  req.train.quiet = true;
  return req;
}

/// [X, 1] and y on the standardized training data.
std::pair<torch::Tensor, torch::Tensor> standardized_design(const Dataset& raw) {
  auto s = Standardizer::fit(raw);
  auto d = s.apply(raw);
  auto A = at::cat({d.x, at::ones({d.size(), 1}, d.x.options())}, 1);
  return {A, d.y};
}

/// argmin sum_i (y_i - a_i theta)^2 / (2 sigma^2) + lambda/2 ||theta||^2
torch::Tensor ridge(const torch::Tensor& A, const torch::Tensor& y, double sigma, double lambda) {
  auto s2 = sigma * sigma;
  auto H = at::matmul(A.t(), A) / s2 + lambda * at::eye(A.size(1), A.options());
  auto g = at::matmul(A.t(), y) / s2;
  return at::linalg_solve(H, g.unsqueeze(1)).squeeze(1);
}

torch::Tensor map_theta(const FittedModel& f) {
  auto* p = dynamic_cast<const ParticlePosterior*>(f.posterior.get());
  EXPECT_NE(p, nullptr);
  EXPECT_EQ(p->particles().size(0), 1);
  return p->particles()[0];
}

TEST(MapFit, LinearModelEqualsClosedFormRidgeWithFixedSigma) {
  const double sigma = 0.5, lambda = 20.0;
  auto req = linear_request("gaussian?sigma=0.5", "map:optimizer=sgd", 0.05, 1500, "20");
  auto fitted = fit(req);
  auto theta = map_theta(fitted);
  ASSERT_EQ(theta.size(0), 4);  // layer0.weight [1, 3] then layer0.bias [1]
  EXPECT_EQ(theta.scalar_type(), at::kDouble);

  auto [A, y] = standardized_design(req.data.fit);
  auto expected = ridge(A, y, sigma, lambda);
  // Full-batch heavy-ball on a convex quadratic converges far beyond the ~1e-3 asked for.
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(theta[i].item<double>(), expected[i].item<double>(), 1e-6) << i;
  // The prior matters here: the unregularized solution is measurably different.
  auto ols = ridge(A, y, sigma, 1e-12);
  EXPECT_GT((ols - expected).abs().max().item<double>(), 3e-3);
  // Standardized y has mean 0 and x has mean 0, so the bias is 0.
  EXPECT_NEAR(theta[3].item<double>(), 0.0, 1e-3);
  // Fixed sigma stays fixed.
  EXPECT_FALSE(fitted.likelihood.learn_sigma);
  EXPECT_DOUBLE_EQ(fitted.likelihood.sigma, sigma);
  EXPECT_EQ(fitted.likelihood.name(), "gaussian?sigma=0.5");
  EXPECT_EQ(fitted.info["prior_precision"], "20");
  EXPECT_EQ(fitted.info["n_fit"], 200);

  // Adam reaches the same optimum.
  auto adam = fit(linear_request("gaussian?sigma=0.5", "map", 0.01, 3000, "20"));
  auto ta = map_theta(adam);
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(ta[i].item<double>(), expected[i].item<double>(), 1e-5) << i;
}

TEST(MapFit, LearnedSigmaConvergesToTheNoise) {
  auto req = linear_request("gaussian", "map", 0.01, 3000, "1");
  auto fitted = fit(req);
  ASSERT_TRUE(fitted.likelihood.learn_sigma);
  double sigma = fitted.likelihood.sigma;
  auto [A, y] = standardized_design(req.data.fit);
  double y_std = fitted.standardizer.y_std;
  EXPECT_NEAR(y_std, Standardizer::fit(req.data.fit).y_std, 1e-12);
  // True noise 0.1 in original units is 0.1 / y_std in standardized units.
  EXPECT_NEAR(sigma, 0.1 / y_std, 0.15 * 0.1 / y_std);
  // Stationarity in sigma: sigma^2 = RSS / N at the fitted weights.
  auto theta = map_theta(fitted);
  double rss = (y - at::matmul(A, theta)).pow(2).sum().item<double>();
  EXPECT_NEAR(sigma * sigma, rss / 200.0, 0.02 * sigma * sigma);
  // ... and the weights are the ridge solution at that sigma.
  auto expected = ridge(A, y, sigma, 1.0);
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(theta[i].item<double>(), expected[i].item<double>(), 1e-4) << i;
}

TEST(MapFit, PerLayerPriorWithEqualValuesEqualsIsotropic) {
  auto with_prior = [](const std::string& prior) {
    FitRequest req;
    req.data = load_data("synthetic:sine?n=64", {torch::kFloat64});
    req.model = "mlp:8";
    req.dtype = torch::kFloat64;
    req.train.epochs = 20;
    req.train.batch_size = 16;
    req.train.lr = 1e-2;
    req.train.prior = prior;
    req.train.quiet = true;
    return map_theta(fit(req));
  };
  auto iso = with_prior("30"), layered = with_prior("30,30"), weak = with_prior("0.01,0.01");
  EXPECT_LT((iso - layered).abs().max().item<double>(), 1e-9);
  // and the prior does act: a strong one shrinks the weights
  EXPECT_LT(iso.norm().item<double>(), weak.norm().item<double>());
}

TEST(MapFit, MoonsClassifierIsAccurate) {
  FitRequest req;
  req.data = load_data("synthetic:moons");
  req.model = "mlp:32";
  req.method = "map";
  req.train.epochs = 150;
  req.train.batch_size = 32;
  req.train.lr = 1e-2;
  req.train.quiet = true;
  auto fitted = fit(req);
  EXPECT_EQ(fitted.num_classes, 2);
  EXPECT_EQ(fitted.likelihood.kind, LikelihoodKind::Categorical);
  EXPECT_EQ(fitted.model->output_dim(), 2);
  auto test = load_data("synthetic:moons?part=test").fit;
  auto p = fitted.predict(test);
  ASSERT_EQ(p.probs.sizes(), (std::vector<int64_t>{200, 2}));
  EXPECT_GT(accuracy(p, test.y), 0.85);
  EXPECT_GT(accuracy(fitted.predict(req.data.fit), req.data.fit.y), 0.85);
  // The probabilities are normalized.
  EXPECT_LT((p.probs.sum(1) - 1).abs().max().item<double>(), 1e-5);
}

FittedModel small_fit(uint64_t seed) {
  FitRequest req;
  req.data = load_data("synthetic:sine?n=64");
  req.model = "mlp:8";
  req.train.epochs = 3;
  req.train.batch_size = 16;
  req.train.seed = seed;
  req.train.quiet = true;
  return fit(req);
}

TEST(MapFit, SameSeedSameThetaDifferentSeedDifferent) {
  auto a = map_theta(small_fit(3)), b = map_theta(small_fit(3)), c = map_theta(small_fit(4));
  EXPECT_TRUE(at::equal(a, b));
  EXPECT_FALSE(at::equal(a, c));
  // Training moved the parameters away from their initialization.
  auto init = make_model("mlp:8", {1}, 1)->init_params(3);
  EXPECT_GT((a - init).abs().max().item<double>(), 1e-4);
}

TEST(MapFit, ZeroEpochsKeepsInitialization) {
  FitRequest req;
  req.data = load_data("synthetic:sine?n=32");
  req.model = "mlp:8";
  req.train.epochs = 0;
  req.train.seed = 5;
  req.train.quiet = true;
  auto f = fit(req);
  EXPECT_TRUE(at::equal(map_theta(f), make_model("mlp:8", {1}, 1)->init_params(5)));
  EXPECT_DOUBLE_EQ(f.likelihood.sigma, 1.0);  // learned sigma starts at 1
}

TEST(MapFit, RejectsBadRequests) {
  FitRequest req;
  req.data = load_data("synthetic:sine?n=16");
  req.model = "mlp:4";
  req.train.quiet = true;
  req.train.epochs = 1;
  auto bad = req;
  bad.method = "nosuch";
  EXPECT_THROW(fit(bad), InvalidArgument);
  bad = req;
  bad.model = "rnn:4";
  EXPECT_THROW(fit(bad), InvalidArgument);
  bad = req;
  bad.likelihood = "categorical";
  EXPECT_THROW(fit(bad), InvalidArgument);
  bad = req;
  bad.train.lr = -1e-3;  // 0 is the method's own default
  EXPECT_THROW(fit(bad), InvalidArgument);
  bad = req;
  bad.train.prior = "1,2,3";  // mlp:4 has 2 layers
  EXPECT_THROW(fit(bad), InvalidArgument);
  bad = req;
  bad.train.lr = 1e6;  // diverges
  bad.train.epochs = 20;
  bad.method = "map:optimizer=sgd";
  EXPECT_THROW(fit(bad), NumericalError);
}

}  // namespace
}  // namespace credence
