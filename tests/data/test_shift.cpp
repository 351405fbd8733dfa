// fmnist shift=rotate:DEG|noise:SD, and class splits for in/out-of-distribution sets.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "helpers.h"

namespace credence {
namespace {

using test::DataErrorWith;

bool have_fmnist() { return std::filesystem::exists(fmnist_dir() + "/t10k-images-idx3-ubyte.gz"); }

TEST(Shift, RotateQuarterTurnIsRot90) {
  if (!have_fmnist()) GTEST_SKIP() << "Fashion-MNIST not installed in " << fmnist_dir();
  auto clean = load_data("fmnist:test?n=20", {torch::kFloat64}).fit.x;
  auto turned = load_data("fmnist:test?n=20&shift=rotate:90", {torch::kFloat64}).fit.x;
  // Pixel centres map onto pixel centres, so bilinear sampling is exact: counter-clockwise
  // as displayed (row 0 at the top) is rot90 from the height axis towards the width axis
  // (numpy's counter-clockwise rot90).
  EXPECT_TRUE(at::allclose(turned, at::rot90(clean, 1, {2, 3}), 0, 1e-9));
  EXPECT_FALSE(at::allclose(turned, at::rot90(clean, 1, {3, 2}), 0, 1e-3));
  auto zero = load_data("fmnist:test?n=20&shift=rotate:0", {torch::kFloat64}).fit.x;
  EXPECT_TRUE(at::allclose(zero, clean, 0, 1e-12));
  // A small angle moves pixels but keeps values in [0, 1].
  auto tilted = load_data("fmnist:test?n=20&shift=rotate:15").fit.x;
  EXPECT_GT((tilted - clean.to(at::kFloat)).abs().mean().item<double>(), 0.01);
  EXPECT_GE(tilted.min().item<double>(), 0.0);
  EXPECT_LE(tilted.max().item<double>(), 1.0 + 1e-6);
}

TEST(Shift, NoiseIsFixedClampedAndScaled) {
  if (!have_fmnist()) GTEST_SKIP() << "Fashion-MNIST not installed in " << fmnist_dir();
  auto clean = load_data("fmnist:test?n=20").fit.x;
  auto a = load_data("fmnist:test?n=20&shift=noise:0.2").fit.x;
  auto b = load_data("fmnist:test?n=20&shift=noise:0.2").fit.x;
  EXPECT_TRUE(at::equal(a, b));  // same spec, same data
  EXPECT_GE(a.min().item<double>(), 0.0);
  EXPECT_LE(a.max().item<double>(), 1.0);
  // Before clamping, |noise| has mean .2 sqrt(2/pi) = .16; clamping at 0 and 1 only shrinks it.
  double moved = (a - clean).abs().mean().item<double>();
  EXPECT_GT(moved, 0.05);
  EXPECT_LT(moved, 0.16);
  EXPECT_TRUE(at::equal(load_data("fmnist:test?n=20&shift=noise:0").fit.x, clean));
  EXPECT_TRUE(
      at::equal(load_data("fmnist:test?n=20&shift=noise:0.2").fit.y, load_data("fmnist:test?n=20").fit.y));
}

TEST(Shift, ClassSplitsForOod) {
  if (!have_fmnist()) GTEST_SKIP() << "Fashion-MNIST not installed in " << fmnist_dir();
  Dataset in = load_data("fmnist:test?classes=0-7&n=500").fit;
  Dataset out = load_data("fmnist:test?classes=8-9&n=200").fit;
  EXPECT_LE(in.y.max().item<int64_t>(), 7);
  EXPECT_GE(out.y.min().item<int64_t>(), 8);
  EXPECT_EQ(out.num_classes, 10);  // labels keep their meaning across splits
  EXPECT_EQ(out.size(), 200);
}

TEST(Shift, BadSpecs) {
  if (!have_fmnist()) GTEST_SKIP() << "Fashion-MNIST not installed in " << fmnist_dir();
  EXPECT_TRUE(DataErrorWith("fmnist:test?n=5&shift=blur:1", {"shift 'blur:1'", "rotate:DEG"}));
  EXPECT_TRUE(DataErrorWith("fmnist:test?n=5&shift=noise:-1", {"SD >= 0"}));
  EXPECT_TRUE(DataErrorWith("fmnist:test?n=5&shift=rotate:x", {"shift 'rotate:x'"}));
  EXPECT_TRUE(DataErrorWith("fmnist:test?n=5&shift=rotate", {"e.g. 'shift=rotate:30'"}));
}

}  // namespace
}  // namespace credence
