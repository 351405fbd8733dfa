// csv:PATH?target=NAME[&task=...&classes=C]: parsing, tasks, and each malformed-input error.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "helpers.h"

namespace credence {
namespace {

using test::DataErrorWith;
using test::TempDir;

const std::string kTiny = std::string(CREDENCE_TEST_DATA_DIR) + "/data/tiny.csv";

TEST(Csv, RegressionFromFixture) {
  Dataset d = load_data("csv:" + kTiny + "?target=price", {torch::kFloat64}).fit;
  EXPECT_EQ(d.task, Task::Regression);
  EXPECT_TRUE(d.standardize_inputs);
  ASSERT_EQ(d.x.sizes(), (at::IntArrayRef{4, 3}));  // the blank line is skipped
  EXPECT_EQ(d.x.scalar_type(), at::kDouble);
  at::Tensor want_x = at::tensor({0.5, 1.0, 0.0, -1.5, 2.0, 2.0, 2.0, 3.0, 1.0, 1e-3, 4.0, 2.0},
                                 at::kDouble)
                          .reshape({4, 3});
  EXPECT_TRUE(d.x.equal(want_x));
  EXPECT_TRUE(d.y.equal(at::tensor({10.25, 11.5, -3.0, 7.0}, at::kDouble)));
}

TEST(Csv, ClassificationFromFixture) {
  Dataset d = load_data("csv:" + kTiny + "?target=label&task=classification").fit;
  EXPECT_EQ(d.task, Task::Classification);
  EXPECT_EQ(d.num_classes, 3);  // max label + 1
  EXPECT_EQ(d.y.scalar_type(), at::kLong);
  EXPECT_TRUE(d.y.equal(at::tensor({0, 2, 1, 2}, at::kLong)));
  EXPECT_EQ(d.x.sizes(), (at::IntArrayRef{4, 3}));
  EXPECT_EQ(d.x.scalar_type(), at::kFloat);
  EXPECT_FLOAT_EQ(d.x[0][2].item<float>(), 10.25f);  // price is an input here

  Dataset fixed = load_data("csv:" + kTiny + "?target=label&task=classification&classes=5").fit;
  EXPECT_EQ(fixed.num_classes, 5);
}

TEST(Csv, QuotedHeaderAndCrlf) {
  TempDir dir;
  auto path = dir.write("q.csv", "\"x1\", \"y\"\r\n1,2\r\n3,4\r\n");
  Dataset d = load_data("csv:" + path + "?target=y").fit;
  EXPECT_EQ(d.size(), 2);
  EXPECT_TRUE(d.y.equal(at::tensor({2.0f, 4.0f})));
}

TEST(Csv, PerClassDrawsThatManyOfEachClassBySeed) {
  TempDir dir;
  std::string text = "x,y\n";
  for (int i = 0; i < 30; ++i) text += std::to_string(i) + "," + std::to_string(i % 3) + "\n";
  auto path = dir.write("p.csv", text);
  auto spec = "csv:" + path + "?target=y&task=classification&per_class=4";
  Dataset d = load_data(spec).fit;
  ASSERT_EQ(d.size(), 12);
  EXPECT_TRUE(at::bincount(d.y).equal(at::tensor({4, 4, 4}, at::kLong)));
  EXPECT_TRUE(std::get<0>(d.x.flatten().sort()).equal(d.x.flatten()));  // the file's order is kept
  for (int64_t i = 0; i < d.size(); ++i)  // each row keeps its label
    EXPECT_EQ(static_cast<int64_t>(d.x[i][0].item<float>()) % 3, d.y[i].item<int64_t>());
  EXPECT_TRUE(load_data(spec).fit.x.equal(d.x));
  EXPECT_FALSE(load_data(spec + "&per_class_seed=1").fit.x.equal(d.x));
  // Held-out parts are carved from the drawn examples.
  EXPECT_EQ(load_data(spec + "&holdout=val:0.5").fit.size(), 6);
  EXPECT_TRUE(DataErrorWith("csv:" + path + "?target=y&task=classification&per_class=11",
                            {"class 0 has only 10 examples"}));
  EXPECT_TRUE(DataErrorWith("csv:" + path + "?target=y&per_class=2", {"classification data only"}));
  EXPECT_TRUE(DataErrorWith("csv:" + path + "?target=y&task=classification&per_class_seed=2",
                            {"per_class_seed given without per_class"}));
}

TEST(Csv, LabelsKeepThoseClassesAndTheLabelSpace) {
  TempDir dir;
  std::string text = "x,y\n";
  for (int i = 0; i < 12; ++i) text += std::to_string(i) + "," + std::to_string(i % 4) + "\n";
  auto path = dir.write("l.csv", text);
  const auto spec = "csv:" + path + "?target=y&task=classification";
  Dataset d = load_data(spec + "&labels=1-2").fit;
  EXPECT_TRUE(d.y.equal(at::tensor({1, 2, 1, 2, 1, 2}, at::kLong)));
  EXPECT_EQ(d.num_classes, 4);
  EXPECT_TRUE(load_data(spec + "&labels=0,3").fit.y.equal(at::tensor({0, 3, 0, 3, 0, 3}, at::kLong)));
  EXPECT_EQ(load_data(spec + "&labels=3&per_class=2").fit.size(), 2);
  Dataset renumbered = load_data(spec + "&labels=1,3&renumber=1").fit;
  EXPECT_TRUE(renumbered.y.equal(at::tensor({0, 1, 0, 1, 0, 1}, at::kLong)));
  EXPECT_EQ(renumbered.num_classes, 2);
  EXPECT_TRUE(DataErrorWith(spec + "&renumber=1", {"renumber= needs labels="}));
  EXPECT_TRUE(DataErrorWith(spec + "&labels=2-7", {"labels '2-7' must be a range"}));
  EXPECT_TRUE(DataErrorWith("csv:" + path + "?target=y&labels=1", {"classification data only"}));
}

TEST(Csv, ShapeMakesRowsImages) {
  TempDir dir;
  auto path = dir.write("i.csv", "a,b,c,d,label\n1,2,3,4,0\n5,6,7,8,1\n");
  Dataset d = load_data("csv:" + path + "?target=label&task=classification&shape=1x2x2").fit;
  ASSERT_EQ(d.x.sizes(), (at::IntArrayRef{2, 1, 2, 2}));
  EXPECT_EQ(d.x[1][0][1][0].item<float>(), 7.0f);
  EXPECT_EQ(d.input_shape(), (std::vector<int64_t>{1, 2, 2}));
  EXPECT_TRUE(DataErrorWith("csv:" + path + "?target=label&shape=1x3x2", {"equal to the 4 input columns"}));
  EXPECT_TRUE(DataErrorWith("csv:" + path + "?target=label&shape=2xa", {"whole numbers"}));
}

TEST(Csv, TokenInputsAreKeptAsIdsAndChecked) {
  TempDir dir;
  auto path = dir.write("t.csv", "t0,t1,t2,label\n3,0,7,1\n1,1,2,0\n");
  Dataset d = load_data("csv:" + path + "?target=label&task=classification&inputs=tokens").fit;
  EXPECT_FALSE(d.standardize_inputs);
  EXPECT_EQ(d.x[0][2].item<float>(), 7.0f);
  EXPECT_TRUE(load_data("csv:" + path + "?target=label&task=classification").fit.standardize_inputs);
  auto frac = dir.write("f.csv", "t0,t1,label\n3,0,1\n1,1.5,0\n");
  EXPECT_TRUE(DataErrorWith("csv:" + frac + "?target=label&task=classification&inputs=tokens",
                            {"data row 2", "not a token id"}));
  auto negative = dir.write("n.csv", "t0,t1,label\n-1,0,1\n");
  EXPECT_TRUE(DataErrorWith("csv:" + negative + "?target=label&task=classification&inputs=tokens", {"data row 1"}));
  EXPECT_TRUE(DataErrorWith("csv:" + path + "?target=label&inputs=words", {"inputs 'words'", "inputs=tokens"}));
  EXPECT_TRUE(DataErrorWith("csv:" + path + "?target=label&inputs=tokens&shape=1x1x3", {"do not go together"}));
}

TEST(Csv, HoldoutWorks) {
  TempDir dir;
  std::string text = "x,y\n";
  for (int i = 0; i < 20; ++i) text += std::to_string(i) + "," + std::to_string(i % 3) + "\n";
  auto path = dir.write("h.csv", text);
  auto parts = load_data("csv:" + path + "?target=y&task=classification&holdout=val:5");
  ASSERT_TRUE(parts.val);
  EXPECT_EQ(parts.val->size(), 5);
  EXPECT_EQ(parts.fit.size(), 15);
  EXPECT_EQ(parts.val->num_classes, 3);
  EXPECT_EQ((parts.fit.x.sum() + parts.val->x.sum()).item<float>(), 190.0f);
}

TEST(Csv, Errors) {
  TempDir dir;
  EXPECT_TRUE(DataErrorWith("csv:" + dir.path() + "/none.csv?target=y", {"does not exist"}));
  EXPECT_TRUE(DataErrorWith("csv:" + kTiny, {"no target column", "target=NAME"}));
  EXPECT_TRUE(DataErrorWith("csv:" + kTiny + "?target=cost",
                            {"no column named 'cost'", "a, b, label, price"}));
  EXPECT_TRUE(DataErrorWith("csv:" + kTiny + "?target=price&task=ranking", {"task 'ranking'"}));
  EXPECT_TRUE(DataErrorWith("csv:" + kTiny + "?target=price&classes=3",
                            {"only applies to task=classification"}));
  EXPECT_TRUE(DataErrorWith("csv:" + kTiny + "?target=label&task=classification&classes=2",
                            {"label out of range", "line 3", "label"}));

  auto ragged = dir.write("ragged.csv", "a,b,y\n1,2,3\n4,5\n");
  EXPECT_TRUE(DataErrorWith("csv:" + ragged + "?target=y", {"line 3", "ragged", "2 cells"}));
  auto text = dir.write("text.csv", "a,b,y\n1,2,3\n4,five,6\n");
  EXPECT_TRUE(DataErrorWith("csv:" + text + "?target=y", {"line 3", "column 'b'", "'five'"}));
  auto blank = dir.write("blank.csv", "a,b,y\n1,,3\n");
  EXPECT_TRUE(DataErrorWith("csv:" + blank + "?target=y", {"line 2", "column 'b'", "not a number"}));
  auto nan = dir.write("nan.csv", "a,b,y\n1,2,3\n\n4,5,nan\n");
  EXPECT_TRUE(DataErrorWith("csv:" + nan + "?target=y", {"line 4", "column 'y'", "NaN or inf"}));
  auto inf = dir.write("inf.csv", "a,b,y\n-inf,2,3\n");
  EXPECT_TRUE(DataErrorWith("csv:" + inf + "?target=y", {"line 2", "column 'a'", "NaN or inf"}));
  auto frac = dir.write("frac.csv", "a,y\n1,0.5\n");
  EXPECT_TRUE(DataErrorWith("csv:" + frac + "?target=y&task=classification",
                            {"line 2", "not a whole number"}));
  auto neg = dir.write("neg.csv", "a,y\n1,-1\n");
  EXPECT_TRUE(DataErrorWith("csv:" + neg + "?target=y&task=classification", {"line 2"}));
  auto header_only = dir.write("header.csv", "a,y\n");
  EXPECT_TRUE(DataErrorWith("csv:" + header_only + "?target=y", {"empty split"}));
  auto empty = dir.write("empty.csv", "");
  EXPECT_TRUE(DataErrorWith("csv:" + empty + "?target=y", {"empty", "header"}));
  auto only_target = dir.write("only.csv", "y\n1\n");
  EXPECT_TRUE(DataErrorWith("csv:" + only_target + "?target=y", {"no input columns"}));
  auto dup = dir.write("dup.csv", "y,a,y\n1,2,3\n");
  EXPECT_TRUE(DataErrorWith("csv:" + dup + "?target=y", {"more than once"}));
}

}  // namespace
}  // namespace credence
