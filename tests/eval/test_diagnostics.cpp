// R-hat and ESS against closed forms (AR(1) chains, a hand-worked split R-hat) and brute force.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cmath>
#include <string>
#include <vector>

#include "credence/core/error.h"
#include "credence/core/rng.h"
#include "credence/eval/diagnostics.h"
#include "expect_invalid.h"
#include "tensors.h"

namespace credence {
namespace {

const double kPi = 3.14159265358979323846;

torch::Tensor normals(std::vector<int64_t> shape, uint64_t seed) {
  return keyed_randn(shape, rng_key(seed, Stream::Sample), at::TensorOptions().dtype(at::kDouble));
}

/// C stationary AR(1) chains x_t = phi x_{t-1} + sqrt(1 - phi^2) eps_t, x_0 ~ N(0, 1): [C, S].
torch::Tensor ar1(double phi, int64_t C, int64_t S, uint64_t seed) {
  torch::Tensor x = normals({C, S}, seed);
  auto a = x.accessor<double, 2>();
  const double scale = std::sqrt(1 - phi * phi);
  for (int64_t c = 0; c < C; ++c)
    for (int64_t t = 1; t < S; ++t) a[c][t] = phi * a[c][t - 1] + scale * a[c][t];
  return x;
}


double value(const torch::Tensor& t) { return t.item<double>(); }

/// Cov(1[X <= a], 1[Y <= a]) for standard bivariate normal X, Y with correlation r:
/// int_0^r exp(-a^2 / (1 + s)) / (2 pi sqrt(1 - s^2)) ds (the derivative of the bivariate normal
/// CDF in its correlation is the density at (a, a)), by Simpson's rule.
double indicator_cov(double r, double a) {
  auto density = [&](double s) { return std::exp(-a * a / (1 + s)) / (2 * kPi * std::sqrt(1 - s * s)); };
  const int n = 2000;
  double sum = density(0) + density(r);
  for (int i = 1; i < n; ++i) sum += (i % 2 ? 4 : 2) * density(r * i / n);
  return sum * r / (3 * n);
}

/// Integrated autocorrelation time 1 + 2 sum_t rho_t of the indicator X_t <= a (P = p) of a
/// stationary Gaussian AR(1), whose lag-t correlation is phi^t.
double indicator_tau(double phi, double a, double p) {
  double tau = 1;
  for (int t = 1; std::pow(phi, t) > 1e-12; ++t) tau += 2 * indicator_cov(std::pow(phi, t), a) / (p * (1 - p));
  return tau;
}

TEST(Diagnostics, IndicatorCovarianceHelperMatchesSheppard) {
  // At the median, Sheppard's formula gives P(X <= 0, Y <= 0) - 1/4 = asin(r) / (2 pi).
  for (double r : {0.3, 0.6, 0.9}) EXPECT_NEAR(indicator_cov(r, 0.0), std::asin(r) / (2 * kPi), 1e-9);
}

TEST(Diagnostics, Ar1EssMatchesClosedForm) {
  const int64_t C = 4, S = 4000;
  const double a = -1.6448536269514722;  // Phi^-1(0.05)
  for (double phi : {0.5, 0.9}) {
    SCOPED_TRACE("phi = " + std::to_string(phi));
    torch::Tensor x = ar1(phi, C, S, phi == 0.5 ? 11 : 12);
    const double expected = (1 - phi) / (1 + phi);
    EXPECT_NEAR(value(ess_bulk(x)) / (C * S), expected, 0.15 * expected);
    EXPECT_NEAR(value(ess_basic(x)) / (C * S), expected, 0.15 * expected);
    // The tail indicators decorrelate faster than x itself, so their ESS is the larger.
    const double tail_expected = 1 / indicator_tau(phi, a, 0.05);
    EXPECT_GT(tail_expected, expected);
    EXPECT_NEAR(value(ess_tail(x)) / (C * S), tail_expected, 0.2 * tail_expected);
    EXPECT_LT(value(rhat(x)), 1.01);
  }
}

TEST(Diagnostics, IndependentDrawsHaveFullEss) {
  const int64_t C = 4, S = 1000;
  torch::Tensor x = normals({C, S}, 3);
  EXPECT_NEAR(value(ess_bulk(x)), C * S, 0.1 * C * S);
  EXPECT_NEAR(value(ess_basic(x)), C * S, 0.1 * C * S);
  EXPECT_NEAR(value(ess_tail(x)), C * S, 0.15 * C * S);
  EXPECT_NEAR(value(rhat(x)), 1.0, 0.01);
  EXPECT_TRUE(summarize(x).warnings().empty());
}

TEST(Diagnostics, ShiftedChainRaisesRhat) {
  torch::Tensor x = normals({4, 1000}, 4);
  x[0] += 2.0;
  EXPECT_GT(value(rhat(x)), 1.1);
  EXPECT_GT(value(rhat_basic(x)), 1.1);
  auto warnings = summarize(x).warnings();
  ASSERT_FALSE(warnings.empty());
  EXPECT_NE(warnings[0].find("R-hat above 1.01"), std::string::npos) << warnings[0];
  EXPECT_NE(warnings[0].find("longer chains"), std::string::npos) << warnings[0];
}

TEST(Diagnostics, FoldingCatchesScaleDifferences) {
  torch::Tensor x = normals({4, 1000}, 5);
  x[0] *= 3.0;
  EXPECT_LT(value(rhat_basic(x)), 1.01);  // equal means: the plain R-hat sees nothing
  EXPECT_GT(value(rhat(x)), 1.05);
}

/// Split R-hat worked from the definitions: M chains of N draws, B = N/(M-1) sum (m_j - m)^2,
/// W = mean_j s_j^2, var+ = (N-1)/N W + B/N, R-hat = sqrt(var+ / W).
double split_rhat_by_hand(const std::vector<std::vector<double>>& split) {
  const double M = split.size(), N = split[0].size();
  std::vector<double> means;
  double grand = 0, W = 0, B = 0;
  for (const auto& chain : split) {
    double m = 0;
    for (double v : chain) m += v / N;
    double s2 = 0;
    for (double v : chain) s2 += (v - m) * (v - m) / (N - 1);
    means.push_back(m);
    grand += m / M;
    W += s2 / M;
  }
  for (double m : means) B += N / (M - 1) * (m - grand) * (m - grand);
  return std::sqrt(((N - 1) / N * W + B / N) / W);
}

TEST(Diagnostics, BasicRhatMatchesHandComputation) {
  torch::Tensor x = f64({1, 3, 2, 6, 4, 0, 5, 1}, {2, 4});
  const double by_hand = split_rhat_by_hand({{1, 3}, {2, 6}, {4, 0}, {5, 1}});
  EXPECT_NEAR(by_hand, 5 / std::sqrt(39.0), 1e-12);  // W = 13/2, var+ = 25/6
  EXPECT_NEAR(value(rhat_basic(x)), by_hand, 1e-10);
  // An odd number of draws drops each chain's middle draw.
  torch::Tensor odd = f64({1, 3, 99, 2, 6, 4, 0, -99, 5, 1}, {2, 5});
  EXPECT_NEAR(value(rhat_basic(odd)), by_hand, 1e-10);
}

TEST(Diagnostics, RankNormalizeMatchesBruteForce) {
  torch::Tensor x = at::round(normals({3, 7}, 6) * 2);  // rounded: many ties
  torch::Tensor z = rank_normalize(x);
  ASSERT_EQ(z.sizes(), x.sizes());
  auto flat = x.reshape({-1});
  const int64_t T = flat.size(0);
  for (int64_t i = 0; i < T; ++i) {
    double less = 0, equal = 0;
    for (int64_t j = 0; j < T; ++j) {
      less += value(flat[j]) < value(flat[i]);
      equal += value(flat[j]) == value(flat[i]);
    }
    const double rank = less + (equal + 1) / 2;  // average rank of the tied run
    const double phi = 0.5 * std::erfc(-value(z.reshape({-1})[i]) / std::sqrt(2.0));
    EXPECT_NEAR(phi, (rank - 0.375) / (T + 0.25), 1e-12) << "draw " << i;
  }
}

TEST(Diagnostics, RankBasedValuesIgnoreMonotoneTransforms) {
  torch::Tensor x = at::round(ar1(0.7, 4, 300, 7) * 3);
  x[1] += 1.0;
  torch::Tensor y = at::exp(x);
  EXPECT_NEAR(value(rhat(y)), value(rhat(x)), 1e-12);
  EXPECT_NEAR(value(ess_bulk(y)), value(ess_bulk(x)), 1e-9);
  EXPECT_NEAR(value(ess_tail(y)), value(ess_tail(x)), 1e-9);
  EXPECT_GT(std::abs(value(rhat_basic(y)) - value(rhat_basic(x))), 1e-3);
}

TEST(Diagnostics, IndependentBinaryDrawsHaveFullEss) {
  // Two distinct values: every rank is a tie, and the 95% indicator is constant (all draws <= 1).
  const int64_t C = 4, S = 1000;
  torch::Tensor x = (normals({C, S}, 15) > 0).to(at::kDouble);
  EXPECT_NEAR(value(ess_bulk(x)), C * S, 0.1 * C * S);
  EXPECT_NEAR(value(ess_tail(x)), C * S, 0.15 * C * S);
  EXPECT_NEAR(value(rhat(x)), 1.0, 0.01);
}

TEST(Diagnostics, BatchedEqualsPerQuantity) {
  const int64_t C = 4, S = 60, Q = 5;
  torch::Tensor x = normals({C, S, Q}, 8);
  x.select(2, 1) += at::arange(C, at::kDouble).unsqueeze(1);      // chains disagree
  x.select(2, 2).copy_(at::round(x.select(2, 2)));               // discrete, ties
  x.select(2, 3).copy_(ar1(0.8, C, S, 9));                       // autocorrelated
  x.select(2, 4).select(0, 0) *= 4;                               // one wide chain
  using Fn = torch::Tensor (*)(const torch::Tensor&);
  for (Fn fn : {Fn(rhat), Fn(rhat_basic), Fn(ess_bulk), Fn(ess_tail), Fn(ess_basic)}) {
    torch::Tensor batched = fn(x);
    ASSERT_EQ(batched.sizes(), at::IntArrayRef({Q}));
    for (int64_t q = 0; q < Q; ++q) EXPECT_NEAR(value(batched[q]), value(fn(x.select(2, q))), 1e-9);
  }
  torch::Tensor z = rank_normalize(x);
  for (int64_t q = 0; q < Q; ++q)
    EXPECT_TRUE(at::allclose(z.select(2, q), rank_normalize(x.select(2, q)), 0, 1e-12));
  ChainDiagnostics d = summarize(x);
  EXPECT_EQ(d.num_quantities, Q);
  EXPECT_EQ(d.num_chains, C);
  EXPECT_EQ(d.num_draws, S);
  EXPECT_DOUBLE_EQ(d.rhat_max, value(rhat(x).max()));
  EXPECT_DOUBLE_EQ(d.ess_bulk_min, value(ess_bulk(x).min()));
  EXPECT_DOUBLE_EQ(d.ess_tail_min, value(ess_tail(x).min()));
  EXPECT_GT(d.rhat_max, 1.1);
}

TEST(Diagnostics, ManyQuantitiesAreSliced) {
  // 2 x 4 draws per quantity: 600,000 quantities need more than one slice of 2^22 draws.
  const int64_t Q = 600000;
  torch::Tensor x = normals({2, 4, Q}, 10);
  torch::Tensor r = rhat_basic(x), z = rank_normalize(x);
  for (int64_t q : {int64_t(0), Q / 2, Q - 1}) {
    EXPECT_NEAR(value(r[q]), value(rhat_basic(x.select(2, q))), 1e-12);
    EXPECT_TRUE(at::equal(z.select(2, q), rank_normalize(x.select(2, q))));
  }
}

TEST(Diagnostics, ConstantQuantitiesAreLeftOut) {
  torch::Tensor x = normals({4, 200, 3}, 11);
  x.select(2, 1).fill_(2.5);
  EXPECT_TRUE(std::isnan(value(rhat(x)[1])));
  EXPECT_TRUE(std::isnan(value(ess_bulk(x)[1])));
  ChainDiagnostics d = summarize(x);
  EXPECT_EQ(d.num_constant, 1);
  EXPECT_TRUE(std::isfinite(d.rhat_max));
  EXPECT_DOUBLE_EQ(d.ess_bulk_min, std::min(value(d.ess_bulk[0]), value(d.ess_bulk[2])));
  auto all_constant = summarize(at::ones({2, 10}));
  ASSERT_EQ(all_constant.warnings().size(), 1u);
  EXPECT_NE(all_constant.warnings()[0].find("constant"), std::string::npos);
}

TEST(Diagnostics, ShortChainsWarnAboutEss) {
  ChainDiagnostics d = summarize(ar1(0.9, 4, 100, 12));
  auto warnings = d.warnings();
  ASSERT_EQ(warnings.size(), 3u);  // R-hat, bulk and tail ESS
  EXPECT_NE(warnings[1].find("bulk ESS below 400"), std::string::npos) << warnings[1];
  EXPECT_NE(warnings[1].find("100 per chain"), std::string::npos) << warnings[1];
  EXPECT_NE(warnings[2].find("tail ESS"), std::string::npos) << warnings[2];
}

TEST(Diagnostics, BadInputsThrow) {
  expect_invalid([] { rhat(at::zeros({1, 10}, at::kDouble)); }, "at least 2");
  expect_invalid([] { ess_bulk(at::zeros({4, 3}, at::kDouble)); }, "at least 4");
  expect_invalid([] { ess_tail(at::zeros({10}, at::kDouble)); }, "[C, S]");
  expect_invalid([] { summarize(at::zeros({2, 4, 0}, at::kDouble)); }, "no quantities");
  for (double bad : {NAN, INFINITY}) {
    torch::Tensor x = normals({2, 8, 4}, 13);
    x[1][5][2] = bad;
    try {
      rhat(x);
      FAIL() << "expected NumericalError";
    } catch (const NumericalError& e) {
      EXPECT_NE(std::string(e.what()).find("quantity 2"), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace credence
