// fmnist:train|test: the Debian files when installed, plus fake IDX files for options and errors.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <zlib.h>

#include <filesystem>
#include <vector>

#include "helpers.h"

namespace credence {
namespace {

using test::DataErrorWith;
using test::ScopedEnv;
using test::TempDir;

void put_u32(std::vector<unsigned char>& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<unsigned char>(v >> shift));
}

void write_gz(const std::string& path, const std::vector<unsigned char>& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  if (!bytes.empty()) ASSERT_EQ(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())),
                                static_cast<int>(bytes.size()));
  gzclose(f);
}

// Fake t10k files: image i has every pixel equal to 10 * i (so it can be identified), label i % 10.
struct FakeFmnist {
  TempDir dir;
  int count;
  explicit FakeFmnist(int n = 25, uint32_t image_magic = 2051, int rows = 28) : count(n) {
    std::vector<unsigned char> labels, images;
    put_u32(labels, 2049);
    put_u32(labels, n);
    for (int i = 0; i < n; ++i) labels.push_back(static_cast<unsigned char>(i % 10));
    put_u32(images, image_magic);
    put_u32(images, n);
    put_u32(images, rows);
    put_u32(images, 28);
    for (int i = 0; i < n; ++i) images.insert(images.end(), rows * 28, static_cast<unsigned char>(10 * i));
    write_gz(dir.path() + "/t10k-labels-idx1-ubyte.gz", labels);
    write_gz(dir.path() + "/t10k-images-idx3-ubyte.gz", images);
  }
};

TEST(Fmnist, DirHonoursEnvOverride) {
  ScopedEnv env("CREDENCE_FMNIST_DIR", "/some/where");
  EXPECT_EQ(fmnist_dir(), "/some/where");
}

TEST(Fmnist, RealTestSet) {
  const std::string dir = fmnist_dir();
  if (!std::filesystem::exists(dir + "/t10k-images-idx3-ubyte.gz"))
    GTEST_SKIP() << "Fashion-MNIST not installed in " << dir;
  Dataset d = load_data("fmnist:test?n=100").fit;
  EXPECT_EQ(d.x.sizes(), (at::IntArrayRef{100, 1, 28, 28}));
  EXPECT_EQ(d.x.scalar_type(), at::kFloat);
  EXPECT_EQ(d.y.sizes(), (at::IntArrayRef{100}));
  EXPECT_EQ(d.y.scalar_type(), at::kLong);
  EXPECT_EQ(d.task, Task::Classification);
  EXPECT_EQ(d.num_classes, 10);
  EXPECT_FALSE(d.standardize_inputs);
  EXPECT_EQ(d.input_shape(), (std::vector<int64_t>{1, 28, 28}));
  EXPECT_GE(d.x.min().item<float>(), 0.0f);
  EXPECT_LE(d.x.max().item<float>(), 1.0f);
  EXPECT_EQ(d.x.max().item<float>(), 1.0f);  // some pixel is saturated
  EXPECT_GE(d.y.min().item<int64_t>(), 0);
  EXPECT_LE(d.y.max().item<int64_t>(), 9);
  EXPECT_GE(std::get<0>(at::_unique(d.y)).numel(), 8);  // 100 examples span most classes
  EXPECT_EQ(d.y[0].item<int64_t>(), 9);  // the first test example is an ankle boot

  Dataset few = load_data("fmnist:test?n=20&classes=0-1").fit;
  EXPECT_EQ(few.size(), 20);
  EXPECT_LE(few.y.max().item<int64_t>(), 1);
}

TEST(Fmnist, FakeFilesOptions) {
  FakeFmnist fake;
  ScopedEnv env("CREDENCE_FMNIST_DIR", fake.dir.path());
  Dataset all = load_data("fmnist:test", {torch::kFloat64}).fit;
  ASSERT_EQ(all.size(), 25);
  EXPECT_EQ(all.x.scalar_type(), at::kDouble);
  EXPECT_DOUBLE_EQ(all.x[3].max().item<double>(), 30.0 / 255.0);
  EXPECT_DOUBLE_EQ(all.x[3].min().item<double>(), 30.0 / 255.0);
  EXPECT_EQ(all.y[13].item<int64_t>(), 3);

  Dataset first = load_data("fmnist:test?n=7").fit;
  ASSERT_EQ(first.size(), 7);
  EXPECT_TRUE(first.y.equal(at::arange(7, at::kLong)));

  // classes keeps original label ids; n counts the kept examples.
  Dataset range = load_data("fmnist:test?classes=2-3").fit;
  EXPECT_TRUE(range.y.equal(at::tensor({2, 3, 12 % 10, 13 % 10, 22 % 10, 23 % 10}, at::kLong)));
  EXPECT_EQ(range.num_classes, 10);
  EXPECT_NEAR(range.x[2].mean().item<float>(), 120.0f / 255.0f, 1e-6);  // image 12
  Dataset list = load_data("fmnist:test?classes=0,5&n=3").fit;
  EXPECT_TRUE(list.y.equal(at::tensor({0, 5, 0}, at::kLong)));
  EXPECT_NEAR(list.x[2].mean().item<float>(), 100.0f / 255.0f, 1e-6);  // image 10

  auto parts = load_data("fmnist:test?holdout=val:5");
  ASSERT_TRUE(parts.val);
  EXPECT_EQ(parts.val->size(), 5);
  EXPECT_EQ(parts.fit.size(), 20);
  EXPECT_FALSE(parts.val->standardize_inputs);
}

TEST(Fmnist, OptionErrors) {
  FakeFmnist fake;
  ScopedEnv env("CREDENCE_FMNIST_DIR", fake.dir.path());
  EXPECT_TRUE(DataErrorWith("fmnist:valid", {"'valid' is unknown", "fmnist:train"}));
  EXPECT_TRUE(DataErrorWith("fmnist:test?n=0", {"n must be >= 1"}));
  EXPECT_TRUE(DataErrorWith("fmnist:test?classes=3-1", {"classes '3-1'"}));
  EXPECT_TRUE(DataErrorWith("fmnist:test?classes=10", {"classes '10'", "0..9"}));
  EXPECT_TRUE(DataErrorWith("fmnist:test?classes=a", {"classes 'a'"}));
}

TEST(Fmnist, MissingAndCorruptFiles) {
  {
    ScopedEnv env("CREDENCE_FMNIST_DIR", "/no/such/fmnist");
    EXPECT_TRUE(DataErrorWith("fmnist:test", {"/no/such/fmnist", "dataset-fashion-mnist"}));
  }
  {
    TempDir empty;
    ScopedEnv env("CREDENCE_FMNIST_DIR", empty.path());
    EXPECT_TRUE(DataErrorWith("fmnist:train", {"train-labels-idx1-ubyte.gz", "missing",
                                               "dataset-fashion-mnist"}));
  }
  {
    FakeFmnist fake(5, /*image_magic=*/1234);
    ScopedEnv env("CREDENCE_FMNIST_DIR", fake.dir.path());
    EXPECT_TRUE(DataErrorWith("fmnist:test", {"t10k-images-idx3-ubyte.gz", "magic number",
                                              "1234", "dataset-fashion-mnist"}));
  }
  {
    FakeFmnist fake(5, 2051, /*rows=*/27);
    ScopedEnv env("CREDENCE_FMNIST_DIR", fake.dir.path());
    EXPECT_TRUE(DataErrorWith("fmnist:test", {"row count", "27"}));
  }
  {
    FakeFmnist fake(5);
    // Truncate the images: the header promises 5 images, the file holds 2.
    std::vector<unsigned char> images;
    put_u32(images, 2051);
    put_u32(images, 5);
    put_u32(images, 28);
    put_u32(images, 28);
    images.resize(images.size() + 2 * 784, 0);
    write_gz(fake.dir.path() + "/t10k-images-idx3-ubyte.gz", images);
    ScopedEnv env("CREDENCE_FMNIST_DIR", fake.dir.path());
    EXPECT_TRUE(DataErrorWith("fmnist:test", {"truncated", "t10k-images-idx3-ubyte.gz"}));
    EXPECT_EQ(load_data("fmnist:test?n=2").fit.size(), 2);  // the leading images are intact
  }
  {
    FakeFmnist fake(5);
    write_gz(fake.dir.path() + "/t10k-labels-idx1-ubyte.gz", {0, 0, 8, 1, 0, 0, 0, 5, 1, 2});
    ScopedEnv env("CREDENCE_FMNIST_DIR", fake.dir.path());
    EXPECT_TRUE(DataErrorWith("fmnist:test", {"t10k-labels-idx1-ubyte.gz", "truncated"}));
  }
  {
    FakeFmnist fake(5);
    write_gz(fake.dir.path() + "/t10k-labels-idx1-ubyte.gz", {0, 0, 8, 1, 0, 0, 0, 1, 12});
    ScopedEnv env("CREDENCE_FMNIST_DIR", fake.dir.path());
    EXPECT_TRUE(DataErrorWith("fmnist:test", {"label 12", "out of range"}));
  }
}

}  // namespace
}  // namespace credence

namespace credence {
namespace {

TEST(FmnistSlow, FullTrainSetIsBalanced) {
  const std::string dir = fmnist_dir();
  if (!std::filesystem::exists(dir + "/train-images-idx3-ubyte.gz"))
    GTEST_SKIP() << "Fashion-MNIST not installed in " << dir;
  Dataset d = load_data("fmnist:train").fit;
  ASSERT_EQ(d.x.sizes(), (at::IntArrayRef{60000, 1, 28, 28}));
  EXPECT_TRUE(at::bincount(d.y).equal(at::full({10}, 6000, at::kLong)));
  double mean = d.x.mean().item<double>();
  EXPECT_NEAR(mean, 0.286, 0.01);  // the well-known Fashion-MNIST pixel mean
}

}  // namespace
}  // namespace credence
