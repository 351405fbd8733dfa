// uci:DIR?split=K&part=train|test: the real yacht set, a tiny fixture, and each malformed input.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include "helpers.h"

namespace credence {
namespace {

using test::DataErrorWith;
using test::TempDir;

const std::string kTiny = std::string(CREDENCE_TEST_DATA_DIR) + "/data/uci_tiny";
const std::string kYacht = std::string(CREDENCE_DATA_DIR) + "/uci/yacht";

TEST(Uci, TinyFixtureSplits) {
  Dataset train = load_data("uci:" + kTiny + "?split=0&part=train", {torch::kFloat64}).fit;
  EXPECT_EQ(train.task, Task::Regression);
  EXPECT_TRUE(train.standardize_inputs);
  EXPECT_TRUE(train.x.equal(
      at::tensor({1.0, 10.0, 3.0, 30.0, 5.0, 50.0}, at::kDouble).reshape({3, 2})));
  EXPECT_TRUE(train.y.equal(at::tensor({100.0, 300.0, 500.0}, at::kDouble)));

  Dataset test = load_data("uci:" + kTiny + "?split=0&part=test").fit;
  EXPECT_EQ(test.x.scalar_type(), at::kFloat);
  EXPECT_TRUE(test.y.equal(at::tensor({200.0f, 400.0f})));

  // Defaults: split 0, part train; split 1 follows its own index order.
  EXPECT_TRUE(load_data("uci:" + kTiny).fit.y.equal(load_data("uci:" + kTiny + "?split=0").fit.y));
  Dataset s1 = load_data("uci:" + kTiny + "?split=1").fit;
  EXPECT_TRUE(s1.y.equal(at::tensor({500.0f, 400.0f, 300.0f, 200.0f})));
}

TEST(Uci, YachtRealSetInOriginalUnits) {
  Dataset train = load_data("uci:" + kYacht + "?split=0&part=train").fit;
  Dataset test = load_data("uci:" + kYacht + "?split=0&part=test").fit;
  EXPECT_EQ(train.size(), 277);
  EXPECT_EQ(test.size(), 31);
  EXPECT_EQ(train.input_shape(), (std::vector<int64_t>{6}));
  EXPECT_EQ(train.y.dim(), 1);
  // Raw units (not standardized): resistance is >= 0 with mean well away from 0.
  EXPECT_GE(train.y.min().item<float>(), 0.0f);
  EXPECT_GT(train.y.mean().item<float>(), 5.0f);
  // The first training example of split 0 is row index_train_0[0] of data.txt, as written there.
  std::ifstream index_file(kYacht + "/index_train_0.txt");
  int64_t first_row = -1;
  index_file >> first_row;
  std::ifstream data_file(kYacht + "/data.txt");
  std::string line;
  for (int64_t i = 0; i <= first_row; ++i) std::getline(data_file, line);
  std::istringstream values(line);
  std::vector<double> row((std::istream_iterator<double>(values)), std::istream_iterator<double>());
  ASSERT_EQ(row.size(), 7u);
  for (int64_t c = 0; c < 6; ++c) EXPECT_FLOAT_EQ(train.x[0][c].item<float>(), row[c]);
  EXPECT_FLOAT_EQ(train.y[0].item<float>(), row[6]);
  Dataset last = load_data("uci:" + kYacht + "?split=19&part=test").fit;
  EXPECT_GT(last.size(), 0);
  EXPECT_FALSE(last.x.equal(test.x));
  // Splits partition the 308 examples.
  EXPECT_EQ(train.size() + test.size(), 308);
}

// Copies the tiny fixture into a temp dir so that a test can break one file.
std::string broken_copy(const TempDir& dir) {
  std::filesystem::copy(kTiny, dir.path() + "/set");
  return dir.path() + "/set";
}

TEST(Uci, Errors) {
  EXPECT_TRUE(DataErrorWith("uci:/no/such/dir", {"'/no/such/dir' does not exist"}));
  EXPECT_TRUE(DataErrorWith("uci:" + kTiny + "?split=2", {"split 2 is out of range",
                                                           "n_splits = 2"}));
  EXPECT_TRUE(DataErrorWith("uci:" + kTiny + "?split=-1", {"out of range"}));
  EXPECT_TRUE(DataErrorWith("uci:" + kTiny + "?part=val", {"part 'val' is unknown"}));
  {
    TempDir dir;
    auto set = broken_copy(dir);
    dir.write("set/data.txt", "1 2 3\n4 5 6\n\n7 8\n");
    EXPECT_TRUE(DataErrorWith("uci:" + set, {"line 4", "ragged"}));
    dir.write("set/data.txt", "1 2 3\n4 x 6\n");
    EXPECT_TRUE(DataErrorWith("uci:" + set, {"line 2", "column 2", "'x' is not a number"}));
    dir.write("set/data.txt", "1 2 3\n4 5 nan\n");
    EXPECT_TRUE(DataErrorWith("uci:" + set, {"line 2", "column 3", "NaN or inf"}));
  }
  {
    TempDir dir;
    auto set = broken_copy(dir);
    std::filesystem::remove(set + "/index_target.txt");
    EXPECT_TRUE(DataErrorWith("uci:" + set, {"index_target.txt"}));
  }
  {
    TempDir dir;
    auto set = broken_copy(dir);
    std::filesystem::remove(set + "/data.txt");
    EXPECT_TRUE(DataErrorWith("uci:" + set, {"data.txt"}));
  }
  {
    TempDir dir;
    auto set = broken_copy(dir);
    std::filesystem::remove(set + "/index_test_1.txt");
    EXPECT_TRUE(DataErrorWith("uci:" + set + "?split=1&part=test", {"index_test_1.txt",
                                                                     "missing"}));
  }
  {
    TempDir dir;
    auto set = broken_copy(dir);
    dir.write("set/index_train_0.txt", "0\n7\n");
    EXPECT_TRUE(DataErrorWith("uci:" + set, {"index_train_0.txt", "line 2", "out of range"}));
    dir.write("set/index_train_0.txt", "");
    EXPECT_TRUE(DataErrorWith("uci:" + set, {"empty split"}));
    dir.write("set/index_features.txt", "0\n3\n");
    EXPECT_TRUE(DataErrorWith("uci:" + set, {"index_features.txt", "out of range"}));
  }
}

}  // namespace
}  // namespace credence
