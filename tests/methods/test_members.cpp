// METHOD:members=M: independent fits from different seeds mixed into one posterior (MoLA,
// ensembles of VI or IVON runs), its predictive by the law of total variance, and its file.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <filesystem>

#include "credence/core/error.h"
#include "credence/core/rng.h"
#include "credence/fit/fit.h"
#include "credence/posterior/members.h"

namespace credence {
namespace {

const auto kF64 = at::TensorOptions().dtype(at::kDouble);

torch::Tensor values(std::vector<double> v, std::vector<int64_t> shape) {
  return at::tensor(at::ArrayRef<double>(v), kF64).view(shape);
}

TEST(Members, MixedPredictivesFollowTheLawOfTotalVariance) {
  Predictive a, b;  // two single Gaussians and a two-component mixture
  a.mean = at::tensor({1.0, -2.0}, kF64);
  a.var = at::tensor({0.5, 1.0}, kF64);
  b.sample_mean = values({3.0, 0.0, 5.0, 0.0}, {2, 2});
  b.sample_var = values({1.0, 2.0, 1.0, 2.0}, {2, 2});
  b.weights = at::tensor({0.25, 0.75}, kF64);
  b.mean = at::tensor({4.5, 0.0}, kF64);
  b.var = at::tensor({1.0 + 0.25 * 9 + 0.75 * 25 - 4.5 * 4.5, 2.0}, kF64);
  auto m = mix_predictives({a, b});
  // point 0: components N(1, .5) w .5, N(3, 1) w .125, N(5, 1) w .375
  const double mean0 = 0.5 * 1 + 0.125 * 3 + 0.375 * 5;
  const double second0 = 0.5 * (0.5 + 1) + 0.125 * (1 + 9) + 0.375 * (1 + 25);
  EXPECT_NEAR(m.mean[0].item<double>(), mean0, 1e-12);
  EXPECT_NEAR(m.var[0].item<double>(), second0 - mean0 * mean0, 1e-12);
  EXPECT_NEAR(m.mean[1].item<double>(), -1.0, 1e-12);
  EXPECT_NEAR(m.var[1].item<double>(), 0.5 * (1 + 4) + 0.5 * 2 - 1.0, 1e-12);
  EXPECT_TRUE(at::allclose(m.weights, at::tensor({0.5, 0.125, 0.375}, kF64)));
  EXPECT_EQ(m.sample_mean.sizes(), (at::IntArrayRef{3, 2}));

  Predictive c, d;
  c.task = d.task = Task::Classification;
  c.probs = values({0.9, 0.1}, {1, 2});
  d.sample_probs = values({0.2, 0.8, 0.4, 0.6}, {2, 1, 2});
  d.probs = values({0.3, 0.7}, {1, 2});
  auto k = mix_predictives({c, d});
  EXPECT_TRUE(at::allclose(k.probs, values({0.6, 0.4}, {1, 2})));
  EXPECT_TRUE(at::allclose(k.weights, at::tensor({0.5, 0.25, 0.25}, kF64)));
}

FitRequest sine_request(const std::string& method) {
  FitRequest req;
  req.data = load_data("synthetic:sine?n=60", {torch::kFloat64});
  req.model = "mlp:16";
  req.method = method;
  req.dtype = torch::kFloat64;
  req.train.epochs = 30;
  req.train.batch_size = 20;
  req.train.seed = 4;
  req.train.quiet = true;
  return req;
}

TEST(Members, AMixtureOfLaplaceFitsIsTheirEqualMixtureAndRoundTrips) {
  auto req = sine_request("laplace:members=3");
  auto mixed = fit(req);
  ASSERT_NE(dynamic_cast<const MembersPosterior*>(mixed.posterior.get()), nullptr);
  EXPECT_EQ(mixed.info.at("members").at("count").get<int64_t>(), 3);
  auto test = load_data("synthetic:sine?n=25&part=test", {torch::kFloat64}).fit;
  auto p = mixed.predict(test);
  // Each member is the fit from its seed, on its own; the mixture's moments are theirs combined.
  torch::Tensor mean, second;
  for (int m = 0; m < 3; ++m) {
    FitRequest one = sine_request("laplace");
    one.train.seed = m == 0 ? 4 : rng_key(4, Stream::Init, 3, m);
    auto q = fit(one).predict(test);
    mean = m == 0 ? q.mean / 3 : mean + q.mean / 3;
    second = m == 0 ? (q.var + q.mean * q.mean) / 3 : second + (q.var + q.mean * q.mean) / 3;
  }
  EXPECT_TRUE(at::allclose(p.mean, mean, 1e-10, 1e-12));
  EXPECT_TRUE(at::allclose(p.var, second - mean * mean, 1e-9, 1e-12));

  auto dir = std::filesystem::temp_directory_path() / ("credence-members-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto file = (dir / "mola.crd").string();
  mixed.save(file, true);
  auto loaded = FittedModel::load(file);
  std::filesystem::remove_all(dir);
  auto again = loaded.predict(test);
  EXPECT_TRUE(at::equal(again.mean, p.mean));
  EXPECT_TRUE(at::equal(again.var, p.var));
}

TEST(Members, SampledMembersMixAndAMethodsOwnMembersOptionStaysItsOwn) {
  auto req = sine_request("vi:members=2");
  req.train.epochs = 5;
  auto vi = fit(req);
  auto test = load_data("synthetic:sine?n=10&part=test", {torch::kFloat64}).fit;
  PredictOptions o;
  o.samples = 8;
  auto p = vi.predict(test, o);
  EXPECT_EQ(p.num_samples(), 16);
  EXPECT_NEAR(p.weights.sum().item<double>(), 1.0, 1e-12);
  const auto* members = dynamic_cast<const MembersPosterior*>(vi.posterior.get());
  ASSERT_NE(members, nullptr);
  auto draws = members->sample(8, 1);
  EXPECT_EQ(draws.size(0), 8);  // 4 per member
  EXPECT_NEAR(members->weights().sum().item<double>(), 1.0, 1e-12);
  req.method = "ensemble:members=2";
  EXPECT_EQ(dynamic_cast<const MembersPosterior*>(fit(req).posterior.get()), nullptr);
}

TEST(Members, BadCombinationsAreRefused) {
  auto expect_refused = [](const std::string& method, const std::string& words) {
    try {
      fit(sine_request(method));
      ADD_FAILURE() << method << " was accepted";
    } catch (const InvalidArgument& e) {
      EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
    }
  };
  expect_refused("laplace:members=1", "members must be >= 2");
  expect_refused("gp:members=2", "does not use a network");
  expect_refused("nuts:subset=pca:2,members=2", "do not go together");
}

}  // namespace
}  // namespace credence
