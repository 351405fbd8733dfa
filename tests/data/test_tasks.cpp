// Task families: seeded sinusoids and one task per group of a CSV file.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "credence/data/tasks.h"
#include "helpers.h"

namespace credence {

TEST(Tasks, SinusoidsAreSeededAndSplitIntoTrainAndTestFamilies) {
  auto a = load_tasks("synthetic:sinusoid?tasks=4&points=6&seed=3");
  auto b = load_tasks("synthetic:sinusoid?tasks=4&points=6&seed=3");
  auto test = load_tasks("synthetic:sinusoid?tasks=4&points=6&seed=3&part=test");
  ASSERT_EQ(a.tasks.size(), 4u);
  for (size_t t = 0; t < 4; ++t) {
    EXPECT_EQ(a.tasks[t].x.sizes(), (std::vector<int64_t>{6, 1}));
    EXPECT_EQ(a.tasks[t].task, Task::Regression);
    EXPECT_TRUE(at::equal(a.tasks[t].y, b.tasks[t].y));
    EXPECT_FALSE(at::equal(a.tasks[t].x, test.tasks[t].x));
    EXPECT_LE(a.tasks[t].x.abs().max().item<double>(), 5.0);
  }
  EXPECT_FALSE(at::allclose(a.tasks[0].y, a.tasks[1].y));
  // Without noise each task is slope x + amplitude sin(1.5 (x - phase)) + offset: within the
  // ranges of its coefficients (|slope| < 1.5 at 5 sd, amplitude in [0.7, 1.3], offset ~ 5).
  auto clean = load_tasks("synthetic:sinusoid?tasks=50&points=40&noise=0");
  for (const auto& t : clean.tasks) {
    auto x = t.x.squeeze(1).to(at::kDouble), y = t.y.to(at::kDouble);
    EXPECT_LT((y - 5.0 - 0.5 * x).abs().max().item<double>(), 1.3 + 1.0 * 5 + 0.6) << t.name;
  }
  EXPECT_THROW(load_tasks("synthetic:sinusoid?tasks=0"), DataError);
  EXPECT_THROW(load_tasks("synthetic:sinusoid?tasks=2&part=val"), DataError);
  EXPECT_THROW(load_tasks("synthetic:sinusoid?shots=2"), Error);
  EXPECT_THROW(load_tasks("synthetic:moons"), DataError);
  // Cauchy bumps: noise-free, each task peaks within its amplitude range above its slope line.
  auto bumps = load_tasks("synthetic:cauchy?tasks=30&points=200&noise=0");
  auto again = load_tasks("synthetic:cauchy?tasks=30&points=200&noise=0");
  for (size_t t = 0; t < bumps.tasks.size(); ++t) {
    const auto& b = bumps.tasks[t];
    EXPECT_TRUE(at::equal(b.y, again.tasks[t].y));
    EXPECT_LE(b.x.abs().max().item<double>(), 3.0);
    EXPECT_LT(b.y.abs().max().item<double>(), 3.0 + 1.5 * 3.0) << b.name;
  }
  EXPECT_FALSE(at::allclose(bumps.tasks[0].y, bumps.tasks[1].y));
}

TEST(Tasks, GroupedCsvGivesOneTaskPerValueWithoutTheGroupColumn) {
  test::TempDir dir;
  auto path = dir.write("g.csv", "site,a,y\n1,0.5,1\n2,0.1,2\n1,0.2,3\n3,0.3,4\n2,0.4,5\n");
  auto set = load_tasks("csv:" + path + "?target=y&group=site");
  ASSERT_EQ(set.tasks.size(), 3u);
  EXPECT_EQ(set.tasks[0].x.sizes(), (std::vector<int64_t>{2, 1}));
  EXPECT_TRUE(at::allclose(set.tasks[0].y.to(at::kDouble), at::tensor({1.0, 3.0}, at::kDouble)));
  EXPECT_TRUE(at::allclose(set.tasks[0].x.squeeze(1).to(at::kDouble), at::tensor({0.5, 0.2}, at::kDouble)));
  EXPECT_TRUE(at::allclose(set.tasks[1].y.to(at::kDouble), at::tensor({2.0, 5.0}, at::kDouble)));
  EXPECT_EQ(set.tasks[2].size(), 1);
  EXPECT_THROW(load_tasks("csv:" + path + "?target=y&group=region"), DataError);
  // The header is read as the CSV loader reads it: quoted names may hold commas.
  auto quoted = dir.write("q.csv", "\"a, first\",site,y\n0.5,1,1\n0.1,2,2\n0.2,1,3\n");
  auto by_site = load_tasks("csv:" + quoted + "?target=y&group=site");
  ASSERT_EQ(by_site.tasks.size(), 2u);
  EXPECT_TRUE(at::allclose(by_site.tasks[0].x.squeeze(1).to(at::kDouble), at::tensor({0.5, 0.2}, at::kDouble)));
  EXPECT_THROW(load_tasks("csv:" + path + "?target=y"), DataError);
  auto pooled = pool_tasks(set);
  EXPECT_EQ(pooled.size(), 5);
  auto [context, target] = split_context(set.tasks[0], 1);
  EXPECT_EQ(context.size(), 1);
  EXPECT_EQ(target.size(), 1);
  EXPECT_THROW(split_context(set.tasks[0], 2), InvalidArgument);
}

TEST(Tasks, UciSetsSplitByAnInputColumn) {
  // Energy efficiency: column 5 is the orientation (2, 3, 4, 5), 192 buildings each.
  auto set = load_tasks(std::string("uci:") + CREDENCE_DATA_DIR + "/uci/energy?group=5");
  ASSERT_EQ(set.tasks.size(), 4u);
  int64_t rows = 0;
  for (const auto& t : set.tasks) {
    EXPECT_EQ(t.x.size(1), 7);
    rows += t.size();
  }
  EXPECT_EQ(rows, 768);
  EXPECT_THROW(load_tasks(std::string("uci:") + CREDENCE_DATA_DIR + "/uci/energy?group=8"), DataError);
  EXPECT_THROW(load_tasks(std::string("uci:") + CREDENCE_DATA_DIR + "/uci/energy"), DataError);
}

}  // namespace credence
