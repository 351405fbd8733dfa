#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include "credence/eval/predictive.h"

namespace credence {
namespace {

TEST(Predictive, SizeAndSamplesClassification) {
  Predictive p;
  p.task = Task::Classification;
  EXPECT_EQ(p.size(), 0);
  p.probs = at::full({5, 3}, 1.0 / 3, at::kDouble);
  EXPECT_EQ(p.size(), 5);
  EXPECT_EQ(p.num_samples(), 1);
  p.sample_probs = at::full({7, 5, 3}, 1.0 / 3, at::kDouble);
  EXPECT_EQ(p.num_samples(), 7);
}

TEST(Predictive, SizeAndSamplesRegression) {
  Predictive p;
  EXPECT_EQ(p.task, Task::Regression);
  EXPECT_EQ(p.size(), 0);
  p.mean = at::zeros({4}, at::kDouble);
  p.var = at::ones({4}, at::kDouble);
  EXPECT_EQ(p.size(), 4);
  EXPECT_EQ(p.num_samples(), 1);
  p.sample_mean = at::zeros({3, 4}, at::kDouble);
  p.sample_var = at::ones({3, 4}, at::kDouble);
  EXPECT_EQ(p.num_samples(), 3);
  p.mean = torch::Tensor();
  EXPECT_EQ(p.size(), 4);  // from the components
}

TEST(Predictive, ToCopiesEveryDefinedField) {
  Predictive p;
  p.mean = at::arange(4, at::kDouble);
  p.var = at::ones({4}, at::kDouble);
  p.sample_mean = at::zeros({2, 4}, at::kDouble);
  p.sample_var = at::ones({2, 4}, at::kDouble);
  p.weights = at::full({2}, 0.5, at::kDouble);
  Predictive q = p.to(torch::Device(torch::kCPU));
  EXPECT_EQ(q.task, Task::Regression);
  EXPECT_TRUE(q.mean.equal(p.mean));
  EXPECT_TRUE(q.weights.equal(p.weights));
  EXPECT_FALSE(q.probs.defined());
  EXPECT_FALSE(q.sample_probs.defined());
  EXPECT_EQ(q.num_samples(), 2);
  EXPECT_EQ(q.size(), 4);
}

}  // namespace
}  // namespace credence
