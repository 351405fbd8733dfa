// synthetic:sine|moons|linear|tokens: shapes, ranges, seeding, train/test separation, parameters.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "helpers.h"

namespace credence {
namespace {

using test::DataErrorWith;

TEST(SyntheticSine, TrainHasAGapTestCoversIt) {
  Dataset train = load_data("synthetic:sine").fit;
  ASSERT_EQ(train.size(), 200);  // default n
  EXPECT_EQ(train.x.sizes(), (at::IntArrayRef{200, 1}));
  EXPECT_EQ(train.y.sizes(), (at::IntArrayRef{200}));
  EXPECT_EQ(train.x.scalar_type(), at::kFloat);
  EXPECT_EQ(train.y.scalar_type(), at::kFloat);
  EXPECT_EQ(train.task, Task::Regression);
  EXPECT_TRUE(train.standardize_inputs);
  at::Tensor ax = train.x.abs();
  EXPECT_GE(ax.min().item<double>(), 1.0);
  EXPECT_LE(ax.max().item<double>(), 3.0);
  // Both sides of the gap are populated.
  EXPECT_GT(train.x.lt(0).sum().item<int64_t>(), 50);
  EXPECT_GT(train.x.gt(0).sum().item<int64_t>(), 50);
  // Residuals around sin(x) have roughly the default noise 0.3.
  double sd = (train.y - at::sin(train.x.squeeze(1))).std().item<double>();
  EXPECT_NEAR(sd, 0.3, 0.08);

  Dataset test = load_data("synthetic:sine?part=test&n=1000").fit;
  ASSERT_EQ(test.size(), 1000);
  EXPECT_GE(test.x.min().item<double>(), -4.0);
  EXPECT_LE(test.x.max().item<double>(), 4.0);
  EXPECT_LT(test.x.min().item<double>(), -3.5);
  EXPECT_GT(test.x.max().item<double>(), 3.5);
  EXPECT_GT(test.x.abs().lt(1).sum().item<int64_t>(), 100);  // the gap is covered
}

TEST(SyntheticSine, NoiseZeroIsExact) {
  Dataset d = load_data("synthetic:sine?noise=0&n=50", {torch::kFloat64}).fit;
  EXPECT_EQ(d.x.scalar_type(), at::kDouble);
  EXPECT_EQ(d.y.scalar_type(), at::kDouble);
  EXPECT_TRUE(at::allclose(d.y, at::sin(d.x.squeeze(1))));
}

TEST(Synthetic, SeedingIsDeterministicAndTrainTestDiffer) {
  for (std::string kind : {"sine", "moons", "linear"}) {
    SCOPED_TRACE(kind);
    std::string base = "synthetic:" + kind + "?n=64";
    Dataset a = load_data(base).fit, b = load_data(base).fit;
    EXPECT_TRUE(a.x.equal(b.x));
    EXPECT_TRUE(a.y.equal(b.y));
    Dataset other_seed = load_data(base + "&seed=1").fit;
    EXPECT_FALSE(a.x.equal(other_seed.x));
    Dataset test = load_data(base + "&part=test").fit;
    EXPECT_FALSE(a.x.equal(test.x));
    EXPECT_EQ(test.x.sizes(), a.x.sizes());
  }
}

TEST(Synthetic, Float64MatchesFloat32) {
  Dataset f = load_data("synthetic:linear?n=20").fit;
  Dataset d = load_data("synthetic:linear?n=20", {torch::kFloat64}).fit;
  EXPECT_EQ(d.x.scalar_type(), at::kDouble);
  EXPECT_TRUE(at::allclose(f.x.to(at::kDouble), d.x, 1e-6, 1e-6));
}

TEST(SyntheticMoons, TwoClassesTwoDims) {
  Dataset d = load_data("synthetic:moons?n=400&seed=3").fit;
  EXPECT_EQ(d.task, Task::Classification);
  EXPECT_EQ(d.num_classes, 2);
  EXPECT_EQ(d.x.sizes(), (at::IntArrayRef{400, 2}));
  EXPECT_EQ(d.y.scalar_type(), at::kLong);
  EXPECT_EQ(d.y.min().item<int64_t>(), 0);
  EXPECT_EQ(d.y.max().item<int64_t>(), 1);
  int64_t ones = d.y.sum().item<int64_t>();
  EXPECT_GT(ones, 150);
  EXPECT_LT(ones, 250);
  // Noise-free moons lie on unit circles centred (0,0) (label 0) and (1,0.5) (label 1).
  Dataset clean = load_data("synthetic:moons?n=100&noise=0", {torch::kFloat64}).fit;
  at::Tensor centre = at::stack({clean.y.to(at::kDouble), 0.5 * clean.y.to(at::kDouble)}, 1);
  at::Tensor radius = (clean.x - centre).norm(2, 1);
  EXPECT_TRUE(at::allclose(radius, at::ones_like(radius)));
  // The outer moon is the upper half (y >= 0), the inner one the lower half (y <= 0.5).
  at::Tensor y0 = clean.x.select(1, 1).masked_select(clean.y.eq(0));
  at::Tensor y1 = clean.x.select(1, 1).masked_select(clean.y.eq(1));
  EXPECT_GE(y0.min().item<double>(), -1e-12);
  EXPECT_LE(y1.max().item<double>(), 0.5 + 1e-12);
}

TEST(SyntheticLinear, SameWeightsForTrainAndTest) {
  const std::string spec = "synthetic:linear?n=100&d=4&noise=0&seed=9";
  Dataset train = load_data(spec, {torch::kFloat64}).fit;
  Dataset test = load_data(spec + "&part=test", {torch::kFloat64}).fit;
  EXPECT_EQ(train.x.sizes(), (at::IntArrayRef{100, 4}));
  EXPECT_EQ(train.task, Task::Regression);
  // With no noise, least squares recovers w exactly, and the same w explains the test part.
  at::Tensor w = std::get<0>(at::linalg_lstsq(train.x, train.y.unsqueeze(1))).squeeze(1);
  EXPECT_TRUE(at::allclose(at::mv(train.x, w), train.y, 1e-8, 1e-8));
  EXPECT_TRUE(at::allclose(at::mv(test.x, w), test.y, 1e-8, 1e-8));
  EXPECT_FALSE(train.x.equal(test.x));
  // Default d is 3; noise default 0.5 shows up in the residual.
  Dataset noisy = load_data("synthetic:linear?n=2000", {torch::kFloat64}).fit;
  EXPECT_EQ(noisy.x.size(1), 3);
  at::Tensor wn = std::get<0>(at::linalg_lstsq(noisy.x, noisy.y.unsqueeze(1))).squeeze(1);
  double sd = (noisy.y - at::mv(noisy.x, wn)).std().item<double>();
  EXPECT_NEAR(sd, 0.5, 0.05);
}

TEST(SyntheticTokens, LabelSaysWhetherIdZeroComesBeforeIdOne) {
  Dataset d = load_data("synthetic:tokens?n=300&length=7&vocab=9&seed=4").fit;
  ASSERT_EQ(d.x.sizes(), (at::IntArrayRef{300, 7}));
  EXPECT_FALSE(d.standardize_inputs);
  EXPECT_EQ(d.num_classes, 2);
  int64_t ones = 0;
  for (int64_t i = 0; i < 300; ++i) {
    auto row = d.x[i].to(at::kLong);
    ASSERT_EQ(row.eq(0).sum().item<int64_t>(), 1);
    ASSERT_EQ(row.eq(1).sum().item<int64_t>(), 1);
    ASSERT_TRUE(row.ge(0).all().item<bool>() && row.lt(9).all().item<bool>());
    const int64_t first = row.eq(0).nonzero()[0][0].item<int64_t>(), second = row.eq(1).nonzero()[0][0].item<int64_t>();
    EXPECT_EQ(d.y[i].item<int64_t>(), first < second ? 1 : 0) << "row " << i;
    ones += d.y[i].item<int64_t>();
  }
  EXPECT_GT(ones, 110);  // both orders are common
  EXPECT_LT(ones, 190);
  // noise flips labels with that probability
  Dataset noisy = load_data("synthetic:tokens?n=300&length=7&vocab=9&seed=4&noise=1").fit;
  EXPECT_TRUE(at::equal(noisy.x, d.x));
  EXPECT_TRUE(at::equal(noisy.y, 1 - d.y));
  EXPECT_TRUE(DataErrorWith("synthetic:tokens?vocab=2", {"vocab >= 3"}));
  EXPECT_TRUE(DataErrorWith("synthetic:tokens?noise=2", {"flip probability"}));
}

TEST(Synthetic, BadInputs) {
  EXPECT_TRUE(DataErrorWith("synthetic:spiral", {"'spiral' is unknown", "sine", "moons",
                                                  "linear"}));
  EXPECT_TRUE(DataErrorWith("synthetic:sine?d=3", {"unknown key 'd'"}));
  EXPECT_TRUE(DataErrorWith("synthetic:linear?d=0", {"d must be >= 1"}));
  EXPECT_TRUE(DataErrorWith("synthetic:moons?noise=-1", {"noise must be"}));
  EXPECT_TRUE(DataErrorWith("synthetic:moons?part=val", {"part 'val' is unknown"}));
  EXPECT_TRUE(DataErrorWith("synthetic:sine?n=-5", {"n must be >= 1"}));
}

}  // namespace
}  // namespace credence
