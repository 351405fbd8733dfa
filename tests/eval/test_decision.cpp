// Bayes decisions: hand-computed classification decisions with a refer action, and the regression
// rules (pinball, interval) against brute-force search with expected costs by quadrature.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "credence/core/error.h"
#include "credence/eval/decision.h"
#include "expect_invalid.h"
#include "tensors.h"

namespace credence {
namespace {

using nlohmann::json;


Predictive classifier(std::vector<double> probs, int64_t C) {
  Predictive p;
  p.task = Task::Classification;
  p.probs = f64(probs, {static_cast<int64_t>(probs.size()) / C, C});
  return p;
}

std::vector<double> values(const torch::Tensor& t) {
  auto c = t.to(at::kDouble).contiguous();
  return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

TEST(Decision, ReferWhenUnsureHandComputed) {
  // Errors cost 10, refer 1: act when the top class has p > 0.9, else refer.
  auto costs = parse_cost_spec({{"classes", 3}, {"error_cost", 10}, {"actions", {{{"name", "refer"}, {"cost", 1}}}}});
  ASSERT_EQ(costs.action_names, (std::vector<std::string>{"0", "1", "2", "refer"}));
  auto p = classifier({0.95, 0.03, 0.02, 0.5, 0.3, 0.2, 0.2, 0.7, 0.1, 0.02, 0.03, 0.95}, 3);
  auto d = decide(p, costs);
  EXPECT_EQ(values(d.action), (std::vector<double>{0, 3, 3, 2}));
  auto expected = values(d.expected_cost);
  std::vector<double> want = {0.5, 1.0, 1.0, 0.5};
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(expected[i], want[i], 1e-12) << i;
  auto realized = values(realized_cost(d, costs, at::tensor({0, 1, 1, 0}, at::kLong)));
  EXPECT_EQ(realized, (std::vector<double>{0, 1, 1, 10}));

  // A sharper (MAP-like) predictive under the same rule acts on the third input and errs.
  auto sharp = classifier({0.99, 0.005, 0.005, 0.5, 0.3, 0.2, 0.02, 0.97, 0.01, 0.01, 0.01, 0.98}, 3);
  auto ds = decide(sharp, costs);
  EXPECT_EQ(values(ds.action), (std::vector<double>{0, 3, 1, 2}));
  EXPECT_EQ(values(realized_cost(ds, costs, at::tensor({0, 1, 0, 0}, at::kLong))),
            (std::vector<double>{0, 1, 10, 10}));
}

TEST(Decision, MatrixWithPerClassReferCost) {
  auto costs = parse_cost_spec(
      {{"matrix", {{0, 5, 5}, {20, 0, 5}, {20, 5, 0}, {2, 2, 4}}}, {"action_names", {"a", "b", "c", "refer"}}});
  // Row 1: a = 0.3*5 + 0.2*5 = 2.5, b = 11, c = 11.5, refer = 1 + 0.6 + 0.8 = 2.4 -> refer.
  // Row 2: a = 1.5 + 0.5 = 2.0, refer = 1.2 + 0.6 + 0.4 = 2.2 -> a.
  auto p = classifier({0.5, 0.3, 0.2, 0.6, 0.3, 0.1}, 3);
  auto d = decide(p, costs);
  EXPECT_EQ(values(d.action), (std::vector<double>{3, 0}));
  EXPECT_NEAR(values(d.expected_cost)[0], 2.4, 1e-12);
  EXPECT_NEAR(values(d.expected_cost)[1], 2.0, 1e-12);
  EXPECT_EQ(values(realized_cost(d, costs, at::tensor({2, 1}, at::kLong))), (std::vector<double>{4, 5}));

  // Only per-sample probabilities: their (weighted) average is used.
  Predictive s;
  s.task = Task::Classification;
  s.sample_probs = f64({0.4, 0.4, 0.2, 0.6, 0.3, 0.1, 0.6, 0.2, 0.2, 0.6, 0.3, 0.1}, {2, 2, 3});
  EXPECT_EQ(values(decide(s, costs).action), (std::vector<double>{3, 0}));
}

TEST(Decision, ShortcutBuildsTheMatrix) {
  auto costs = parse_cost_spec({{"classes", "fmnist"},
                                {"error_cost", 10},
                                {"correct_cost", 0},
                                {"actions", {{{"name", "refer"}, {"cost", 1}}}}});
  ASSERT_EQ(costs.matrix.size(), 11u);
  EXPECT_EQ(costs.num_classes(), 10);
  EXPECT_EQ(costs.action_names[0], "T-shirt/top");
  EXPECT_EQ(costs.action_names[10], "refer");
  EXPECT_EQ(costs.matrix[3][3], 0);
  EXPECT_EQ(costs.matrix[3][4], 10);
  EXPECT_EQ(costs.matrix[10], std::vector<double>(10, 1.0));
  auto per_class = parse_cost_spec({{"classes", {"x", "y"}}, {"actions", {{{"name", "test"}, {"cost", {1, 3}}}}}});
  EXPECT_EQ(per_class.matrix, (std::vector<std::vector<double>>{{0, 1}, {1, 0}, {1, 3}}));
}

// ---- regression: brute force with expected costs by quadrature ------------------------------

/// Three mixtures of three Gaussians (weights 0.2, 0.5, 0.3).
Predictive mixture3() {
  Predictive p;
  p.task = Task::Regression;
  p.sample_mean = f64({-1.0, 0.0, 3.0, 0.5, 0.2, 3.5, 2.0, -0.3, 4.0}, {3, 3});
  p.sample_var = f64({0.25, 1.0, 0.5, 1.0, 0.3, 0.4, 0.5, 2.0, 0.3}, {3, 3});
  p.weights = f64({0.2, 0.5, 0.3}, {3});
  p.mean = (p.sample_mean * p.weights.view({3, 1})).sum(0);
  p.var = ((p.sample_var + p.sample_mean.square()) * p.weights.view({3, 1})).sum(0) - p.mean.square();
  return p;
}

/// Point i's density on a fine grid, for expectations by the midpoint rule.
struct Quadrature {
  torch::Tensor y, fdy;  // [Ny]
  double h = 0.004;
  Quadrature(const Predictive& p, int64_t i) {
    const double lo = -15, hi = 18;
    y = at::arange(lo + h / 2, hi, h, at::kDouble);
    fdy = at::zeros_like(y);
    for (int64_t s = 0; s < 3; ++s) {
      double m = p.sample_mean[s][i].item<double>(), v = p.sample_var[s][i].item<double>();
      fdy += p.weights[s].item<double>() * at::exp(-(y - m).square() / (2 * v)) / std::sqrt(2 * M_PI * v) * h;
    }
  }
  /// E[(a - y)^+], E[(y - a)^+], P(y < a) for actions a [A].
  torch::Tensor below(const torch::Tensor& a) const { return ((a.unsqueeze(1) - y).clamp_min(0) * fdy).sum(1); }
  torch::Tensor above(const torch::Tensor& a) const { return ((y - a.unsqueeze(1)).clamp_min(0) * fdy).sum(1); }
  torch::Tensor cdf(const torch::Tensor& a) const {  // the cell that holds a counts in part
    return (((a.unsqueeze(1) - y) / h + 0.5).clamp(0, 1) * fdy).sum(1);
  }
};

TEST(Decision, PinballIsTheQuantileByBruteForce) {
  auto p = mixture3();
  auto costs = parse_cost_spec({{"type", "pinball"}, {"under", 3}, {"over", 1}});
  auto d = decide(p, costs);
  auto actions = at::linspace(-4, 7, 1101, at::kDouble);
  for (int64_t i = 0; i < 3; ++i) {
    Quadrature q(p, i);
    auto grid_cost = 3 * q.above(actions) + 1 * q.below(actions);
    auto best = grid_cost.argmin().item<int64_t>();
    double a = d.value[i].item<double>();
    EXPECT_NEAR(a, actions[best].item<double>(), 0.03) << i;
    EXPECT_NEAR(q.cdf(d.value.narrow(0, i, 1)).item<double>(), 0.75, 1e-3) << i;
    auto at_a = 3 * q.above(d.value.narrow(0, i, 1)) + q.below(d.value.narrow(0, i, 1));
    EXPECT_NEAR(d.expected_cost[i].item<double>(), at_a.item<double>(), 1e-5) << i;
    EXPECT_LE(d.expected_cost[i].item<double>(), grid_cost.min().item<double>() + 1e-6) << i;
  }
  auto r = realized_cost(d, costs, d.value + f64({1, -2, 0}, {3}));
  EXPECT_NEAR(r[0].item<double>(), 3.0, 1e-12);
  EXPECT_NEAR(r[1].item<double>(), 2.0, 1e-12);
  EXPECT_NEAR(r[2].item<double>(), 0.0, 1e-12);
}

TEST(Decision, SquaredIsTheMean) {
  auto p = mixture3();
  auto d = decide(p, parse_cost_spec({{"type", "squared"}}));
  EXPECT_TRUE(at::allclose(d.value, p.mean, 1e-12, 1e-12));
  EXPECT_TRUE(at::allclose(d.expected_cost, p.var, 1e-10, 1e-10));
}

/// Brute force over all pairs l <= u of an action grid; returns (cost, l, u) of the best pair.
std::tuple<double, double, double> best_interval(const Quadrature& q, const torch::Tensor& a, double width,
                                                 double miss, bool fixed) {
  torch::Tensor low_part = fixed ? miss * q.cdf(a) : miss * q.below(a);               // as l
  torch::Tensor high_part = fixed ? miss * (1 - q.cdf(a)) : miss * q.above(a);         // as u
  torch::Tensor cost = width * (a.unsqueeze(0) - a.unsqueeze(1)) + low_part.unsqueeze(1) + high_part.unsqueeze(0);
  cost = cost.masked_fill(a.unsqueeze(0) < a.unsqueeze(1), 1e300);  // [l, u] needs l <= u
  int64_t k = cost.argmin().item<int64_t>(), n = a.size(0);
  return {cost.min().item<double>(), a[k / n].item<double>(), a[k % n].item<double>()};
}

void check_interval(const Predictive& p, const json& spec, double width, double miss, bool fixed) {
  auto costs = parse_cost_spec(spec);
  auto d = decide(p, costs);
  auto actions = at::linspace(-5, 7, 601, at::kDouble);  // step 0.02
  for (int64_t i = 0; i < 3; ++i) {
    Quadrature q(p, i);
    auto [grid_cost, l, u] = best_interval(q, actions, width, miss, fixed);
    double dl = d.lower[i].item<double>(), du = d.upper[i].item<double>();
    EXPECT_NEAR(dl, l, 0.05) << spec.dump() << " point " << i;
    EXPECT_NEAR(du, u, 0.05) << spec.dump() << " point " << i;
    auto lo = d.lower.narrow(0, i, 1), hi = d.upper.narrow(0, i, 1);
    double at_d = width * (du - dl) + (fixed ? miss * (q.cdf(lo) + 1 - q.cdf(hi)).item<double>()
                                             : miss * (q.below(lo) + q.above(hi)).item<double>());
    EXPECT_NEAR(d.expected_cost[i].item<double>(), at_d, 2e-4 * miss) << spec.dump() << " point " << i;
    EXPECT_LE(d.expected_cost[i].item<double>(), grid_cost + 2e-4 * miss) << spec.dump() << " point " << i;
  }
}

TEST(Decision, IntervalRulesMatchBruteForce) {
  auto p = mixture3();
  // Miss cost per unit outside: quantiles 1/20 and 19/20.
  check_interval(p, {{"type", "interval"}, {"width_cost", 1}, {"miss_cost", 20}}, 1, 20, false);
  // Miss cost per miss: ends where the density is 1/20 (for a mixture, the best single interval).
  check_interval(p, {{"type", "interval"}, {"width_cost", 1}, {"miss_cost", 20}, {"miss", "fixed"}}, 1, 20, true);
  check_interval(p, {{"type", "interval"}, {"width_cost", 1}, {"miss_cost", 4}, {"miss", "fixed"}}, 1, 4, true);
  // A miss that costs less than twice the width: the interval shrinks to the median.
  auto d = decide(p, parse_cost_spec({{"type", "interval"}, {"width_cost", 1}, {"miss_cost", 1.5}}));
  EXPECT_TRUE(at::equal(d.lower, d.upper));
  // A fixed miss cost below the density peak's reach: no interval pays, the median is the point.
  auto never = decide(p, parse_cost_spec({{"type", "interval"}, {"width_cost", 1}, {"miss_cost", 0.5}, {"miss", "fixed"}}));
  EXPECT_TRUE(at::allclose(never.lower, d.lower, 1e-9, 1e-9));
  EXPECT_TRUE(at::allclose(never.expected_cost, at::full({3}, 0.5, at::kDouble)));
  // Realized: width plus the miss.
  auto spec = parse_cost_spec({{"type", "interval"}, {"width_cost", 2}, {"miss_cost", 10}, {"miss", "fixed"}});
  Decisions fixed;
  fixed.lower = f64({0, 0}, {2});
  fixed.upper = f64({1, 1}, {2});
  EXPECT_EQ(values(realized_cost(fixed, spec, f64({0.5, 3}, {2}))), (std::vector<double>{2, 12}));
  spec.miss_fixed = false;
  EXPECT_EQ(values(realized_cost(fixed, spec, f64({0.5, 3}, {2}))), (std::vector<double>{2, 22}));
}

TEST(Decision, BadSpecsAreRejectedWithTheFix) {
  expect_invalid([] { parse_cost_spec({{"classes", 3}, {"eror_cost", 10}}); }, "unknown key 'eror_cost'");
  expect_invalid([] { parse_cost_spec({{"classes", 3}, {"error_cost", -1}}); }, "must be finite and >= 0");
  expect_invalid([] { parse_cost_spec({{"classes", 3}, {"error_cost", "ten"}}); }, "'error_cost' must be a number");
  expect_invalid([] { parse_cost_spec({{"classes", "cifar"}}); }, "\"fmnist\"");
  expect_invalid([] { parse_cost_spec({{"classes", 2}, {"actions", {{{"name", "refer"}}}}}); }, "\"cost\"");
  expect_invalid([] { parse_cost_spec({{"classes", 2}, {"actions", {{{"name", "refer"}, {"cost", {1, 2, 3}}}}}}); },
                 "one per class (2)");
  expect_invalid([] { parse_cost_spec({{"classes", 2}, {"actions", {{{"name", "0"}, {"cost", 1}}}}}); },
                 "appears twice");
  expect_invalid([] { parse_cost_spec({{"matrix", {{0, 1}, {1}}}}); }, "row 1 has 1 entries");
  expect_invalid([] { parse_cost_spec({{"matrix", {{0, 1}, {1, 0}}}, {"action_names", {"a"}}}); },
                 "1 action names for 2 matrix rows");
  expect_invalid([] { parse_cost_spec({{"type", "pinball"}, {"under", 1}}); }, "needs 'under' and 'over'");
  expect_invalid([] { parse_cost_spec({{"type", "pinball"}, {"under", 0}, {"over", 1}}); }, "must both be > 0");
  expect_invalid([] { parse_cost_spec({{"type", "interval"}, {"width_cost", 1}, {"miss_cost", 5}, {"miss", "x"}}); },
                 "\"distance\"");
  expect_invalid([] { parse_cost_spec({{"type", "huber"}}); }, "unknown type \"huber\"");
  expect_invalid([] { parse_cost_spec({{"error_cost", 10}}); }, "give 'classes'");
  CostSpec nan_spec = parse_cost_spec({{"classes", 2}});
  nan_spec.matrix[0][1] = std::nan("");
  expect_invalid([&] { nan_spec.validate(); }, "cost [0][1] is nan");

  // Specs that do not fit the model.
  auto three = parse_cost_spec({{"classes", 3}, {"error_cost", 10}});
  expect_invalid([&] { decide(classifier({0.5, 0.5}, 2), three); },
                 "3 columns (true classes) but the model predicts 2 classes");
  expect_invalid([&] { decide(mixture3(), three); }, "the model does regression");
  expect_invalid([&] { decide(classifier({0.5, 0.5}, 2), parse_cost_spec({{"type", "squared"}})); },
                 "the model is a classifier");
}

TEST(Decision, LoadsCostFiles) {
  std::string path = testing::TempDir() + "credence_costs.json";
  std::ofstream(path) << R"({"classes": 2, "error_cost": 10, "actions": [{"name": "refer", "cost": 1}]})";
  EXPECT_EQ(load_cost_spec(path).action_names.back(), "refer");
  std::ofstream(path) << R"({"classes": 2, )";
  expect_invalid([&] { load_cost_spec(path); }, "not valid JSON");
  std::ofstream(path) << R"({"classes": 2, "extra": 1})";
  expect_invalid([&] { load_cost_spec(path); }, path);
  std::remove(path.c_str());
  EXPECT_THROW(load_cost_spec(path), IoError);
}

}  // namespace
}  // namespace credence
