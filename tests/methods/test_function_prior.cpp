// Priors over functions (--prior gp:...): the KL at context points against closed forms, and vi with it.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cmath>

#include "credence/credence.h"
#include "credence/core/rng.h"
#include "credence/methods/function_prior.h"
#include "credence/methods/vi.h"
#include "credence/posterior/gp.h"

#include <torch/csrc/autograd/autograd.h>

namespace credence {

// For a linear model with as many context points as weights (bias included), the push-forward is an
// invertible linear map of the weights, so the KL to the GP with the linear kernel a^2 (x.x' + 1)
// is the weight-space KL to N(0, a^2 I) -- value and gradients.
TEST(FunctionPrior, LinearKernelOnALinearModelIsTheWeightSpaceKl) {
  auto model = make_model("mlp:", {2}, 1, torch::kFloat64);
  auto prior = FunctionPrior::parse("gp:linear?amplitude=0.5&jitter=1e-12&context=train&points=3");
  auto gen = cpu_generator(3);
  auto xc = prior.context_points(at::randn({10, 2}, gen, at::kDouble), 0);
  ASSERT_EQ(xc.size(0), 3);
  auto mean = at::randn({3}, gen, at::kDouble).requires_grad_(true);
  auto sd = (at::rand({3}, gen, at::kDouble) + 0.2).requires_grad_(true);
  auto function_kl = prior.kl(*model, mean, sd * sd, xc);
  auto weight_kl = kl_diag_gaussian(mean, sd, at::full({3}, 1.0 / 0.25, at::kDouble));
  EXPECT_NEAR(function_kl.item<double>(), weight_kl.item<double>(), 1e-7);
  auto gf = torch::autograd::grad({function_kl}, {mean, sd});
  auto gw = torch::autograd::grad({weight_kl}, {mean, sd});
  EXPECT_TRUE(at::allclose(gf[0], gw[0], 1e-6, 1e-8)) << gf[0] << gw[0];
  EXPECT_TRUE(at::allclose(gf[1], gw[1], 1e-6, 1e-8)) << gf[1] << gw[1];
}

// Two outputs are two independent GPs: the KL is the sum of each output's.
TEST(FunctionPrior, OutputsAreIndependentGps) {
  auto model = make_model("mlp:4", {2}, 2, torch::kFloat64);
  auto prior = FunctionPrior::parse("gp:rbf?lengthscale=0.7&points=5");
  auto gen = cpu_generator(5);
  auto xc = prior.context_points(at::randn({20, 2}, gen, at::kDouble), 11);
  ASSERT_EQ(xc.sizes(), (std::vector<int64_t>{5, 2}));
  EXPECT_TRUE(at::equal(xc, prior.context_points(at::randn({20, 2}, cpu_generator(5), at::kDouble), 11)));
  auto mean = model->init_params(1), var = at::full_like(mean, 0.01);
  auto total = prior.kl(*model, mean, var, xc).item<double>();
  // By hand for each output, with the Jacobian from autograd.
  auto theta = mean.clone().requires_grad_(true);
  auto out = model->forward(xc, theta, nullptr);
  double expected = 0;
  for (int c = 0; c < 2; ++c) {
    std::vector<torch::Tensor> rows;
    for (int m = 0; m < 5; ++m) rows.push_back(torch::autograd::grad({out[m][c]}, {theta}, {}, true)[0]);
    auto J = at::stack(rows);
    auto S = J.mm(J.t()) * 0.01 + 1e-4 * at::eye(5, at::kDouble);
    auto d2 = (xc.unsqueeze(1) - xc.unsqueeze(0)).pow(2).sum(-1);
    auto K = at::exp(-0.5 * d2 / (0.7 * 0.7)) + 1e-4 * at::eye(5, at::kDouble);
    auto f = out.select(1, c).detach();
    auto Kinv = at::inverse(K);
    expected += 0.5 * (at::trace(Kinv.mm(S)) + f.dot(Kinv.mv(f)) - 5 + at::logdet(K) - at::logdet(S)).item<double>();
  }
  EXPECT_NEAR(total, expected, 1e-8 * std::abs(expected) + 1e-9);
}

TEST(FunctionPrior, SpecsAreCheckedAndOnlyVariationalInferenceTakesOne) {
  EXPECT_THROW(FunctionPrior::parse("gp:cosine"), InvalidArgument);
  EXPECT_THROW(FunctionPrior::parse("gp:rbf?lengthscale=0"), InvalidArgument);
  EXPECT_THROW(FunctionPrior::parse("gp:rbf?context=grid"), InvalidArgument);
  EXPECT_THROW(FunctionPrior::parse("gp:rbf?width=2"), InvalidArgument);
  FitRequest r;
  r.data = load_data("synthetic:sine?n=32");
  r.model = "mlp:8";
  r.train.epochs = 2;
  r.train.quiet = true;
  r.train.prior = "gp:rbf?lengthscale=0.5&points=8";
  for (std::string method : {"map", "laplace", "ensemble", "vi:family=full", "vi:subset=last_layer"}) {
    r.method = method;
    EXPECT_THROW(fit(r), InvalidArgument) << method;
  }
  r.method = "vi";
  auto fitted = fit(r);
  EXPECT_EQ(fitted.info.at("report").at("prior").get<std::string>(), r.train.prior);
  EXPECT_TRUE(std::isfinite(fitted.info.at("report").at("elbo").get<double>()));
  r.method = "vi:init=map";  // its MAP takes the default weight prior
  EXPECT_NO_THROW(fit(r));
}

// vi with the linear kernel's GP prior on a linear model takes the weight-space steps: the same
// posterior as vi with the matching weight prior, up to round-off.
TEST(FunctionPrior, VariationalFitEqualsTheWeightSpaceFitForTheMatchingKernel) {
  FitRequest r;
  r.data = load_data("synthetic:linear?n=40&d=2", {torch::kFloat64});
  r.model = "mlp:";
  r.method = "vi:estimator=weight";
  r.dtype = torch::kFloat64;
  r.train.epochs = 30;
  r.train.batch_size = 10;
  r.train.quiet = true;
  r.train.prior = "4";
  auto weight = fit(r);
  r.train.prior = "gp:linear?amplitude=0.5&context=train&points=3&jitter=1e-12";
  auto function = fit(r);
  auto a = weight.posterior->sample(64, 1), b = function.posterior->sample(64, 1);
  EXPECT_LT((a - b).abs().max().item<double>(), 1e-5);
}

// lengthscale=auto takes the length scale and amplitude of the GP that the data's evidence picks.
TEST(FunctionPrior, AutoLengthscaleIsTheGpEvidenceChoice) {
  FitRequest r;
  r.data = load_data("synthetic:sine?n=40");
  r.model = "mlp:8";
  r.train.epochs = 2;
  r.train.quiet = true;
  r.method = "gp:kernel=rbf";
  auto gp = fit(r);
  const auto& kernel = dynamic_cast<const GpPosterior&>(*gp.posterior).kernel();
  r.method = "vi";
  r.train.prior = "gp:rbf?lengthscale=auto&points=8";
  auto fitted = fit(r);
  const auto& chosen = fitted.info.at("function_prior");
  EXPECT_NEAR(chosen.at("lengthscale")[0].get<double>(), std::exp(kernel.log_lengthscale[0].item<double>()), 1e-9);
  EXPECT_NEAR(chosen.at("amplitude").get<double>(), std::exp(kernel.log_amplitude.item<double>()), 1e-9);
  EXPECT_THROW(FunctionPrior::parse("gp:rbf?lengthscale=auto&amplitude=2"), InvalidArgument);
  EXPECT_THROW(FunctionPrior::parse("gp:linear?lengthscale=auto"), InvalidArgument);
  r.data = load_data("synthetic:moons?n=40");
  EXPECT_THROW(fit(r), InvalidArgument);  // classification: give the length scale
}

}  // namespace credence
