// Dataset methods, load_data dispatch and the holdout carving shared by every scheme.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <vector>

#include "helpers.h"

namespace credence {
namespace {

using test::DataErrorWith;

std::vector<double> column0(const Dataset& d) {
  at::Tensor c = d.x.select(1, 0).to(at::kDouble).contiguous();
  return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

TEST(Task, ToString) {
  EXPECT_STREQ(to_string(Task::Regression), "regression");
  EXPECT_STREQ(to_string(Task::Classification), "classification");
}

TEST(Dataset, InputShapeSubsetAndTo) {
  Dataset d;
  d.x = at::arange(24, at::kFloat).reshape({4, 1, 2, 3});
  d.y = at::tensor({3, 1, 2, 0}, at::kLong);
  d.task = Task::Classification;
  d.num_classes = 5;
  d.name = "toy";
  d.standardize_inputs = false;
  EXPECT_EQ(d.size(), 4);
  EXPECT_EQ(d.input_shape(), (std::vector<int64_t>{1, 2, 3}));

  Dataset s = d.subset(at::tensor({2, 0}, at::kLong));
  ASSERT_EQ(s.size(), 2);
  EXPECT_TRUE(s.x[0].equal(d.x[2]));
  EXPECT_TRUE(s.x[1].equal(d.x[0]));
  EXPECT_EQ(s.y[0].item<int64_t>(), 2);
  EXPECT_EQ(s.y[1].item<int64_t>(), 3);
  EXPECT_EQ(s.task, Task::Classification);
  EXPECT_EQ(s.num_classes, 5);
  EXPECT_EQ(s.name, "toy");
  EXPECT_FALSE(s.standardize_inputs);
  EXPECT_EQ(s.input_shape(), d.input_shape());

  Dataset c = d.to(torch::kCPU);
  EXPECT_TRUE(c.x.equal(d.x));
  EXPECT_TRUE(c.y.equal(d.y));
  EXPECT_EQ(c.num_classes, 5);

  Dataset empty;
  EXPECT_EQ(empty.size(), 0);
  EXPECT_TRUE(empty.input_shape().empty());
}

TEST(LoadData, UnknownSchemeListsSchemes) {
  EXPECT_TRUE(DataErrorWith("mnist:train", {"unknown scheme 'mnist'", "fmnist", "uci", "csv",
                                            "synthetic"}));
}

TEST(LoadData, UnknownKeyIsDataError) {
  EXPECT_TRUE(DataErrorWith("synthetic:sine?bogus=1", {"unknown key 'bogus'", "noise"}));
  EXPECT_TRUE(DataErrorWith("fmnist:test?n=5&size=3", {"unknown key 'size'"}));
  EXPECT_TRUE(DataErrorWith("uci:/nonexistent?folds=3", {"unknown key 'folds'"}));
  EXPECT_TRUE(DataErrorWith("csv:x.csv?target=y&sep=;", {"unknown key 'sep'"}));
}

TEST(LoadData, MalformedSpecAndValuesAreDataErrors) {
  EXPECT_TRUE(DataErrorWith("synthetic:sine?n", {"not key=value"}));
  EXPECT_TRUE(DataErrorWith("synthetic:sine?n=abc", {"'n'", "abc"}));
  EXPECT_TRUE(DataErrorWith("synthetic:sine?n=0", {"n must be >= 1"}));
}

TEST(LoadData, RejectsNonFloatingDtype) {
  DataOptions options;
  options.dtype = torch::kInt32;
  EXPECT_THROW(load_data("synthetic:sine", options), InvalidArgument);
}

TEST(LoadData, NameIsTheSpec) {
  auto parts = load_data("synthetic:sine?n=10");
  EXPECT_EQ(parts.fit.name, "synthetic:sine?n=10");
  EXPECT_FALSE(parts.val.has_value());
  EXPECT_FALSE(parts.cal.has_value());
}

TEST(Holdout, PartsAreDisjointAndCoverTheData) {
  const std::string base = "synthetic:sine?n=200&seed=4";
  Dataset all = load_data(base).fit;
  auto parts = load_data(base + "&holdout=val:0.1,cal:30&holdout_seed=7");
  ASSERT_TRUE(parts.val && parts.cal);
  EXPECT_EQ(parts.val->size(), 20);
  EXPECT_EQ(parts.cal->size(), 30);
  EXPECT_EQ(parts.fit.size(), 150);

  auto whole = column0(all);
  std::set<double> unique(whole.begin(), whole.end());
  ASSERT_EQ(unique.size(), whole.size()) << "the test needs distinct x values";

  std::vector<double> joined;
  for (const Dataset* d : {&parts.fit, &*parts.val, &*parts.cal}) {
    auto v = column0(*d);
    joined.insert(joined.end(), v.begin(), v.end());
  }
  std::set<double> joined_set(joined.begin(), joined.end());
  EXPECT_EQ(joined_set.size(), joined.size()) << "parts overlap";
  EXPECT_EQ(joined_set, unique) << "parts do not cover the data";

  // Each row keeps its own target: y of every part equals y of the matching row of the whole.
  for (const Dataset* d : {&parts.fit, &*parts.val, &*parts.cal}) {
    for (int64_t i = 0; i < d->size(); ++i) {
      double xv = d->x[i][0].item<double>();
      auto it = std::find(whole.begin(), whole.end(), xv);
      ASSERT_NE(it, whole.end());
      EXPECT_EQ(d->y[i].item<double>(), all.y[it - whole.begin()].item<double>());
    }
  }
  EXPECT_EQ(parts.val->task, Task::Regression);
  EXPECT_NE(parts.val->name.find("val"), std::string::npos);
  EXPECT_NE(parts.cal->name.find("cal"), std::string::npos);
}

TEST(Holdout, SameSpecSameParts_SeedChangesThem) {
  const std::string spec = "synthetic:moons?n=100&holdout=val:0.2";
  auto a = load_data(spec);
  auto b = load_data(spec);
  ASSERT_TRUE(a.val && b.val);
  EXPECT_TRUE(a.val->x.equal(b.val->x));
  EXPECT_TRUE(a.fit.x.equal(b.fit.x));
  EXPECT_TRUE(a.fit.y.equal(b.fit.y));
  auto c = load_data(spec + "&holdout_seed=1");
  EXPECT_FALSE(a.val->x.equal(c.val->x));
  EXPECT_EQ(c.val->size(), 20);
  EXPECT_EQ(c.val->num_classes, 2);
}

TEST(Holdout, OnlyCal) {
  auto parts = load_data("synthetic:linear?n=50&holdout=cal:5");
  EXPECT_FALSE(parts.val.has_value());
  ASSERT_TRUE(parts.cal.has_value());
  EXPECT_EQ(parts.cal->size(), 5);
  EXPECT_EQ(parts.fit.size(), 45);
}

TEST(Holdout, EmptySplitsAreDataErrors) {
  EXPECT_TRUE(DataErrorWith("synthetic:sine?n=10&holdout=val:0.01", {"empty split", "val"}));
  EXPECT_TRUE(DataErrorWith("synthetic:sine?n=10&holdout=val:5,cal:5", {"empty split"}));
  EXPECT_TRUE(DataErrorWith("synthetic:sine?n=10&holdout=val:0.6,cal:0.5", {"empty split"}));
}

TEST(Holdout, BadSyntaxIsDataError) {
  EXPECT_TRUE(DataErrorWith("synthetic:sine?holdout=test:0.1", {"holdout part 'test:0.1'"}));
  EXPECT_TRUE(DataErrorWith("synthetic:sine?holdout=val", {"holdout part 'val'"}));
  EXPECT_TRUE(DataErrorWith("synthetic:sine?holdout=val:0", {"fraction in (0, 1)"}));
  EXPECT_TRUE(DataErrorWith("synthetic:sine?holdout=val:1.5", {"fraction in (0, 1)"}));
  EXPECT_TRUE(DataErrorWith("synthetic:sine?holdout=val:-3", {"fraction in (0, 1)"}));
  EXPECT_TRUE(DataErrorWith("synthetic:sine?holdout=val:abc", {"fraction in (0, 1)"}));
  EXPECT_TRUE(DataErrorWith("synthetic:sine?holdout=val:0.1,val:0.2", {"twice"}));
  EXPECT_TRUE(DataErrorWith("synthetic:sine?holdout=val:0.1&holdout_seed=x", {"holdout_seed"}));
  EXPECT_TRUE(DataErrorWith("synthetic:sine?holdout_seed=3", {"without holdout"}));
}

}  // namespace
}  // namespace credence
