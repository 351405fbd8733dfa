// The method registry and METHOD spec parsing, training options, Gaussian priors and keyed RNG.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include "credence/core/error.h"
#include "credence/core/rng.h"
#include "credence/fit/fit.h"
#include "credence/methods/method.h"
#include "credence/prior/prior.h"

namespace credence {
namespace {

::testing::AssertionResult ThrowsInvalidWith(const std::string& spec, const std::string& part) {
  try {
    resolve_method(spec);
  } catch (const InvalidArgument& e) {
    if (std::string(e.what()).find(part) == std::string::npos)
      return ::testing::AssertionFailure() << "message for '" << spec << "' lacks '" << part << "': " << e.what();
    return ::testing::AssertionSuccess();
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "'" << spec << "' threw another type: " << e.what();
  }
  return ::testing::AssertionFailure() << "'" << spec << "' was accepted";
}

TEST(Registry, MapIsRegistered) {
  const auto& reg = method_registry();
  ASSERT_FALSE(reg.empty());
  const auto& map = find_method("map");
  EXPECT_EQ(map.name, "map");
  EXPECT_FALSE(map.post_hoc);
  ASSERT_EQ(map.fields.size(), 1u);
  EXPECT_EQ(map.fields[0].name, "optimizer");
  EXPECT_EQ(map.fields[0].default_value, "adam");
  EXPECT_TRUE(static_cast<bool>(map.make));
}

TEST(Registry, ResolveMethod) {
  auto [info, opts] = resolve_method("map:optimizer=sgd");
  EXPECT_EQ(info->name, "map");
  EXPECT_EQ(opts.get_string("optimizer"), "sgd");
  EXPECT_TRUE(opts.given("optimizer"));
  auto [info2, defaults] = resolve_method("map");
  EXPECT_EQ(info2, info);
  EXPECT_EQ(defaults.get_string("optimizer"), "adam");
  EXPECT_FALSE(defaults.given("optimizer"));
  EXPECT_TRUE(ThrowsInvalidWith("map:foo=1", "foo"));
  EXPECT_TRUE(ThrowsInvalidWith("map:optimizer=rmsprop", "rmsprop"));
  EXPECT_TRUE(ThrowsInvalidWith("nosuch", "nosuch"));
  EXPECT_TRUE(ThrowsInvalidWith("nosuch", "map"));  // names what is known
  // Method-specific values are checked before any training.
  EXPECT_TRUE(ThrowsInvalidWith("laplace:hessian=lowrank:0", "lowrank:0"));
  EXPECT_TRUE(ThrowsInvalidWith("laplace:hessian=block", "block"));
  EXPECT_TRUE(ThrowsInvalidWith("laplace:subset=first_layer", "first_layer"));
  EXPECT_TRUE(ThrowsInvalidWith("laplace:prior=fixed:abc", "abc"));
  EXPECT_TRUE(ThrowsInvalidWith("laplace:prior=evidence", "evidence"));
  EXPECT_TRUE(ThrowsInvalidWith("ensemble:members=0", "members"));
  EXPECT_TRUE(ThrowsInvalidWith("map:optimizer=sgd,optimizer=adam", "twice"));
  EXPECT_THROW(find_method("MAP"), InvalidArgument);
}

TEST(MethodSpec, ParseEdgeCases) {
  auto a = MethodSpec::parse("map");
  EXPECT_EQ(a.name, "map");
  EXPECT_TRUE(a.values.empty());
  EXPECT_EQ(a.text, "map");
  auto b = MethodSpec::parse(" laplace : hessian = kron , subset=last_layer");
  EXPECT_EQ(b.name, "laplace");
  EXPECT_EQ(b.values.size(), 2u);
  EXPECT_EQ(b.values.at("hessian"), "kron");
  EXPECT_EQ(b.values.at("subset"), "last_layer");
  // A comma inside a value is kept when the next piece has no '='.
  auto c = MethodSpec::parse("vi:prior=1,2,3,samples=4");
  EXPECT_EQ(c.values.at("prior"), "1,2,3");
  EXPECT_EQ(c.values.at("samples"), "4");
  auto d = MethodSpec::parse("x:k=a=b");  // only the first '=' splits
  EXPECT_EQ(d.values.at("k"), "a=b");
  auto e = MethodSpec::parse("x:k=");
  EXPECT_EQ(e.values.at("k"), "");
  EXPECT_THROW(MethodSpec::parse(""), InvalidArgument);
  EXPECT_THROW(MethodSpec::parse(":a=1"), InvalidArgument);
  EXPECT_THROW(MethodSpec::parse("map:sgd"), InvalidArgument);
  EXPECT_THROW(MethodSpec::parse("map:a=1,a=2"), InvalidArgument);
}

TEST(TrainOptions, Validate) {
  TrainOptions t;
  EXPECT_NO_THROW(t.validate());
  EXPECT_EQ(t.prior, "auto");
  t.epochs = -1;
  EXPECT_THROW(t.validate(), InvalidArgument);
  t = {};
  t.batch_size = 0;
  EXPECT_THROW(t.validate(), InvalidArgument);
  t = {};
  t.lr = -0.1;
  EXPECT_THROW(t.validate(), InvalidArgument);
  t = {};
  t.epochs = 0;
  EXPECT_NO_THROW(t.validate());
}

TEST(GaussianPrior, IsotropicNegLogProbByHand) {
  auto m = make_model("mlp:5", {3}, 2, torch::kFloat64);
  auto p = GaussianPrior::isotropic(2.0, *m);
  ASSERT_EQ(p.precision.numel(), 32);
  auto theta = at::arange(32, at::kDouble) * 0.1;
  // 0.5 * 2 * sum (0.1 k)^2 = 0.01 * sum k^2 = 0.01 * 31*32*63/6
  EXPECT_NEAR(p.neg_log_prob(theta).item<double>(), 0.01 * 10416.0, 1e-9);
  auto stacked = p.neg_log_prob(at::stack({theta, at::ones({32}, at::kDouble)}));
  ASSERT_EQ(stacked.sizes(), (std::vector<int64_t>{2}));
  EXPECT_NEAR(stacked[0].item<double>(), 104.16, 1e-9);
  EXPECT_NEAR(stacked[1].item<double>(), 32.0, 1e-12);
  EXPECT_EQ(p.describe(), "2");
  EXPECT_THROW(GaussianPrior::isotropic(0.0, *m), InvalidArgument);
  EXPECT_THROW(GaussianPrior::isotropic(-1.0, *m), InvalidArgument);
}

TEST(GaussianPrior, PerLayerExpandsPerBlock) {
  auto m = make_model("mlp:5", {3}, 2, torch::kFloat64);
  auto p = GaussianPrior::per_layer({1.0, 10.0}, *m);
  // layer 0: weight [5, 3] + bias [5] = 20 entries; layer 1: weight [2, 5] + bias [2] = 12
  EXPECT_TRUE(at::equal(p.precision.narrow(0, 0, 20), at::full({20}, 1.0, at::kDouble)));
  EXPECT_TRUE(at::equal(p.precision.narrow(0, 20, 12), at::full({12}, 10.0, at::kDouble)));
  auto theta = at::ones({32}, at::kDouble);
  EXPECT_NEAR(p.neg_log_prob(theta).item<double>(), 0.5 * (20 * 1.0 + 12 * 10.0), 1e-12);
  EXPECT_EQ(p.describe(), "1,10");
  auto parsed = GaussianPrior::parse("1,10", *m);
  EXPECT_TRUE(at::equal(parsed.precision, p.precision));
  EXPECT_TRUE(at::equal(GaussianPrior::parse("3", *m).precision, at::full({32}, 3.0, at::kDouble)));
  EXPECT_THROW(GaussianPrior::per_layer({1.0, 2.0, 3.0}, *m), InvalidArgument);
  EXPECT_THROW(GaussianPrior::parse("1,2,3", *m), InvalidArgument);
  EXPECT_THROW(GaussianPrior::per_layer({1.0, 0.0}, *m), InvalidArgument);
  EXPECT_THROW(GaussianPrior::parse("abc", *m), InvalidArgument);
  EXPECT_THROW(GaussianPrior::parse("", *m), InvalidArgument);

  auto lenet = make_model("cnn:lenet", {1, 28, 28}, 10);
  auto q = GaussianPrior::per_layer({1, 2, 3, 4, 5}, *lenet);
  const auto& b = lenet->layout().find("layer3.bias");
  EXPECT_EQ(q.precision[b.offset].item<float>(), 4.0f);
  EXPECT_EQ(q.precision[lenet->layout().size - 1].item<float>(), 5.0f);
}

TEST(KeyedRng, SameKeySameDraws) {
  auto opts = at::TensorOptions().dtype(at::kDouble);
  auto k = rng_key(7, Stream::Sample, 3, 1);
  EXPECT_EQ(k, rng_key(7, Stream::Sample, 3, 1));
  EXPECT_TRUE(at::equal(keyed_randn({4, 5}, k, opts), keyed_randn({4, 5}, k, opts)));
  // Any part of the key changes the draws.
  for (auto other : {rng_key(7, Stream::Sample, 4, 1), rng_key(7, Stream::Sample, 3, 2),
                     rng_key(8, Stream::Sample, 3, 1), rng_key(7, Stream::Noise, 3, 1)}) {
    EXPECT_NE(other, k);
    EXPECT_FALSE(at::equal(keyed_randn({4, 5}, other, opts), keyed_randn({4, 5}, k, opts)));
  }
  // Draws do not depend on what else was drawn in between.
  auto first = keyed_randn({3}, k, opts);
  at::randn({100});
  EXPECT_TRUE(at::equal(first, keyed_randn({3}, k, opts)));
  // Standard normal: a large draw has mean ~0 and sd ~1.
  auto big = keyed_randn({20000}, rng_key(1, Stream::Noise), opts);
  EXPECT_NEAR(big.mean().item<double>(), 0.0, 0.05);
  EXPECT_NEAR(big.std().item<double>(), 1.0, 0.05);
}

TEST(KeyedRng, PermutationIsAPermutationAndKeyed) {
  auto a = keyed_permutation(50, rng_key(0, Stream::Shuffle, 0));
  EXPECT_EQ(a.scalar_type(), at::kLong);
  EXPECT_TRUE(at::equal(std::get<0>(a.sort()), at::arange(50, at::kLong)));
  EXPECT_TRUE(at::equal(a, keyed_permutation(50, rng_key(0, Stream::Shuffle, 0))));
  EXPECT_FALSE(at::equal(a, keyed_permutation(50, rng_key(0, Stream::Shuffle, 1))));
  EXPECT_FALSE(at::equal(a, at::arange(50, at::kLong)));
}

}  // namespace
}  // namespace credence

namespace credence {
TEST(GaussianPrior, AddGradMatchesAutograd) {
  auto m = make_model("mlp:5", {3}, 2, torch::kFloat64);
  std::vector<GaussianPrior> priors = {GaussianPrior::isotropic(2.0, *m), GaussianPrior::per_layer({1.0, 10.0}, *m)};
  for (const auto& prior : priors) {
    auto theta = (at::arange(32, at::kDouble) * 0.1 - 1.0).requires_grad_(true);
    (prior.neg_log_prob(theta) * 0.25).backward();
    auto grad = at::full({32}, 1.0, at::kDouble);  // add_grad accumulates onto what is there
    double value = prior.add_grad(theta.detach(), grad, 0.25);
    EXPECT_TRUE(at::allclose(grad, theta.grad() + 1.0, 1e-12, 1e-12));
    EXPECT_NEAR(value, 0.25 * prior.neg_log_prob(theta.detach()).item<double>(), 1e-12);
  }
}
}  // namespace credence

namespace credence {
namespace {

// Without a step size each method takes its own (IVON's is a fraction of a Newton step); a given
// one is kept, and a post-hoc method's MAP takes MAP's.
TEST(TrainOptions, EachMethodTakesItsOwnStepSizeUnlessOneIsGiven) {
  FitRequest req;
  req.data = load_data("synthetic:moons?n=100");
  req.model = "mlp:4";
  req.train.epochs = 1;
  req.train.quiet = true;
  const std::vector<std::pair<std::string, double>> defaults = {{"map", 1e-3}, {"ivon", 0.1}, {"vi", 1e-3}};
  for (const auto& [method, lr] : defaults) {
    req.method = method;
    EXPECT_DOUBLE_EQ(fit(req).info["lr"].get<double>(), lr) << method;
  }
  req.method = "ivon";
  req.train.lr = 0.05;
  EXPECT_DOUBLE_EQ(fit(req).info["lr"].get<double>(), 0.05);
  req.train.lr = -1;
  EXPECT_THROW(fit(req), InvalidArgument);
}

}  // namespace
}  // namespace credence
