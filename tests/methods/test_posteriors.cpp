// Sampling and persistence of the Gaussian and mixture posteriors.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

#include "credence/credence.h"
#include "credence/posterior/laplace.h"

namespace credence {

TEST(GaussianPosterior, SamplesHaveItsMoments) {
  auto mean = at::tensor({1.0, -2.0, 0.5}, at::kDouble);
  auto var = at::tensor({0.25, 4.0, 1e-4}, at::kDouble);
  GaussianPosterior q(mean, var);
  auto s = q.sample(20000, 7);
  ASSERT_EQ(s.sizes(), (std::vector<int64_t>{20000, 3}));
  // Standard errors: sd / sqrt(n) for the mean, ~var * sqrt(2 / n) for the variance.
  EXPECT_TRUE(at::allclose(s.mean(0), mean, 0, 4 * 2.0 / std::sqrt(20000.0)));
  EXPECT_TRUE(at::allclose(s.var(0), var, 0.05, 0));
  EXPECT_TRUE(at::equal(q.sample(5, 7), q.sample(5, 7)));  // keyed: same seed, same draws
  EXPECT_FALSE(at::equal(q.sample(5, 7), q.sample(5, 8)));
}

TEST(MixturePosterior, StratifiedSamplesKeepEachComponent) {
  auto means = at::tensor({-3.0, 3.0}, at::kDouble).view({2, 1});
  auto vars = at::full({2, 1}, 0.01, at::kDouble);
  MixturePosterior q(means, vars, at::tensor({0.25, 0.75}, at::kDouble));
  auto s = q.sample(8, 1);
  ASSERT_EQ(s.size(0), 8);
  EXPECT_EQ((s < 0).sum().item<int64_t>(), 2);  // round(8 * 0.25) draws near -3
  auto w = q.weights();
  EXPECT_NEAR(w.sum().item<double>(), 1.0, 1e-12);
  EXPECT_NEAR(w[0].item<double>(), 0.125, 1e-12);  // 0.25 / 2 draws
  EXPECT_NEAR(w[7].item<double>(), 0.125, 1e-12);  // 0.75 / 6 draws
  EXPECT_THROW(MixturePosterior(means, vars, at::tensor({0.5, 0.6}, at::kDouble)), NumericalError);
  EXPECT_THROW(MixturePosterior(means, vars, at::tensor({1.0}, at::kDouble)), InvalidArgument);
}

TEST(MixturePosterior, PredictiveIsTheWeightedMixtureAndSurvivesSaveLoad) {
  auto data = load_data("synthetic:linear?n=50&d=1", {torch::kFloat64}).fit;
  FittedModel f;
  f.model = make_model("mlp:", {1}, 1, torch::kFloat64);
  f.likelihood = Likelihood::parse("gaussian?sigma=0.5", data);
  f.standardizer = Standardizer::fit(data);
  // Two point-like components: slopes +1 and -1, bias 0.
  auto means = at::tensor({1.0, 0.0, -1.0, 0.0}, at::kDouble).view({2, 2});
  f.posterior = std::make_shared<MixturePosterior>(means, at::full({2, 2}, 1e-24, at::kDouble),
                                                   at::tensor({0.5, 0.5}, at::kDouble));
  f.method = "test";
  auto p = f.predict(data, {2});
  auto xs = f.standardizer.inputs(data.x).squeeze(1);
  auto sd = f.standardizer.y_std;
  // Mixture of N(+x, s^2) and N(-x, s^2) in standardized units: mean 0, var s^2 + x^2.
  EXPECT_TRUE(at::allclose(p.mean, at::full_like(p.mean, f.standardizer.y_mean), 1e-6, 1e-6));
  EXPECT_TRUE(at::allclose(p.var, (0.25 + xs * xs) * sd * sd, 1e-6, 1e-6));

  char dir[] = "/tmp/credence-mixXXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  std::string path = std::string(dir) + "/mix.crd";
  f.save(path);
  auto g = FittedModel::load(path);
  EXPECT_EQ(g.posterior->kind(), "mixture");
  auto p2 = g.predict(data, {2});
  EXPECT_TRUE(at::allclose(p2.var, p.var, 1e-12, 1e-12));
  std::remove(path.c_str());
  rmdir(dir);
}

}  // namespace credence

namespace credence {
namespace {

FitRequest moons_request() {
  FitRequest req;
  req.data = load_data("synthetic:moons?n=200", {torch::kFloat64});
  req.model = "mlp:8";
  req.dtype = torch::kFloat64;
  req.train.epochs = 3;
  req.train.quiet = true;
  return req;
}

// A sampled posterior draws its weights once per (samples, seed): repeated predictions reuse them
// and equal a fresh posterior's; another seed, or a changed Laplace prior, draws anew.
TEST(PosteriorDraws, RepeatedPredictionsReuseTheDrawsAndMatchFreshOnes) {
  auto req = moons_request();
  auto test = load_data("synthetic:moons?n=40&part=test", {torch::kFloat64}).fit;
  for (const std::string method : {"vi", "swag:collect=2,rank=0", "mcdropout", "laplace:predictive=nn"}) {
    SCOPED_TRACE(method);
    req.method = method;
    auto f = fit(req);
    auto first = f.predict(test, {16, 5});
    auto again = f.predict(test, {16, 5});
    EXPECT_TRUE(at::equal(first.probs, again.probs));
    auto file = (std::filesystem::temp_directory_path() / ("draws_" + std::to_string(getpid()) + ".crd")).string();
    f.save(file, true);
    auto loaded = FittedModel::load(file);
    std::filesystem::remove(file);
    EXPECT_TRUE(at::equal(loaded.predict(test, {16, 5}).probs, first.probs));
    EXPECT_FALSE(at::equal(f.predict(test, {16, 6}).probs, first.probs));
    EXPECT_TRUE(at::equal(f.predict(test, {16, 5}).probs, first.probs));
  }
  req.method = "laplace:predictive=nn";
  auto f = fit(req);
  auto* laplace = dynamic_cast<LaplacePosterior*>(f.posterior.get());
  ASSERT_NE(laplace, nullptr);
  auto before = f.predict(test, {16, 5});
  laplace->set_hyper(at::full({1}, 1e-3, at::kDouble), laplace->sigma());
  EXPECT_FALSE(at::equal(f.predict(test, {16, 5}).probs, before.probs));
}

// One fitted model serves several threads: predictions made at once (the first of them drawing
// the weights and laying them out) equal those of a copy used by one thread.
TEST(PosteriorDraws, ThreadsSharingOneFittedModelGetTheSequentialPredictions) {
  auto req = moons_request();
  auto test = load_data("synthetic:moons?n=40&part=test", {torch::kFloat64}).fit;
  for (const std::string method : {"vi", "swag:collect=2,rank=0", "mcdropout", "ensemble:members=3",
                                   "laplace:subset=all,hessian=kron", "laplace:predictive=nn"}) {
    SCOPED_TRACE(method);
    req.method = method;
    auto file = (std::filesystem::temp_directory_path() / ("threads_" + std::to_string(getpid()) + ".crd")).string();
    fit(req).save(file, true);
    const auto shared = FittedModel::load(file), alone = FittedModel::load(file);
    std::filesystem::remove(file);
    std::vector<std::vector<torch::Tensor>> got(4);
    std::vector<std::thread> threads;
    for (size_t t = 0; t < got.size(); ++t)
      threads.emplace_back([&, t] {
        for (int r = 0; r < 3; ++r) got[t].push_back(shared.predict(test, {16, 5}).probs);
      });
    for (auto& th : threads) th.join();
    auto expected = alone.predict(test, {16, 5}).probs;
    for (const auto& per_thread : got)
      for (const auto& probs : per_thread) EXPECT_TRUE(at::equal(probs, expected));
  }
}

}  // namespace
}  // namespace credence
