// Laplace posteriors against laplace-torch golden values (tests/fixtures/golden/laplace_golden.json), in
// float64: curvature (full GGN, diagonal, KFAC), posterior precision and covariance, the marginal
// likelihood and its parts, the GLM predictive, and marginal-likelihood tuning of the prior.
// See tests/fixtures/golden/README.md and the file's "conventions" for what each golden value means.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "credence/curvature/curvature.h"
#include "credence/data/dataset.h"
#include "credence/likelihood/likelihood.h"
#include "credence/methods/laplace.h"
#include "credence/model/model.h"
#include "credence/model/subset.h"
#include "credence/posterior/laplace.h"

namespace credence {
namespace {

using nlohmann::json;

constexpr double kRtol = 1e-8;

const json& golden() {
  static const json g = [] {
    std::ifstream in(std::string(CREDENCE_TEST_DATA_DIR) + "/golden/laplace_golden.json");
    if (!in) throw std::runtime_error("cannot open " CREDENCE_TEST_DATA_DIR "/golden/laplace_golden.json");
    return json::parse(in);
  }();
  return g;
}

// A (nested) JSON list of numbers as a float64 tensor of the same shape.
void flatten(const json& j, std::vector<double>& values, std::vector<int64_t>& shape, size_t depth) {
  if (!j.is_array()) {
    values.push_back(j.get<double>());
    return;
  }
  if (shape.size() <= depth) shape.push_back(static_cast<int64_t>(j.size()));
  for (const auto& e : j) flatten(e, values, shape, depth + 1);
}

at::Tensor T(const json& j) {
  std::vector<double> values;
  std::vector<int64_t> shape;
  flatten(j, values, shape, 0);
  return at::tensor(values, at::kDouble).reshape(shape);
}

// Max over entries of |a - e| / max(|e|, 1e-3 * max|e|): relative error, with entries near zero
// measured against the array's largest magnitude (as the golden README asks).
double max_rel_err(const at::Tensor& actual, const at::Tensor& expected) {
  auto a = actual.to(at::kDouble).reshape({-1}), e = expected.to(at::kDouble).reshape({-1});
  if (a.numel() != e.numel()) return INFINITY;
  double amax = e.abs().max().item<double>();
  auto denom = at::clamp_min(e.abs(), std::max(1e-3 * amax, 1e-300));
  return ((a - e).abs() / denom).max().item<double>();
}

double rel_err(double a, double e) { return std::abs(a - e) / std::max(std::abs(e), 1e-300); }

// Every comparison is printed, so the log lists the error of each golden value.
#define EXPECT_CLOSE_T(what, actual, expected, rtol)                                              \
  do {                                                                                            \
    auto _a = (actual);                                                                           \
    auto _e = (expected);                                                                         \
    ASSERT_EQ(_a.numel(), _e.numel()) << what << ": shapes " << _a.sizes() << " vs " << _e.sizes(); \
    double _err = max_rel_err(_a, _e);                                                            \
    std::printf("  [cmp] %-52s max rel err %.2e\n", std::string(what).c_str(), _err);           \
    EXPECT_LE(_err, rtol) << what;                                                                \
  } while (0)

#define EXPECT_CLOSE_D(what, actual, expected, rtol)                                              \
  do {                                                                                            \
    double _a = (actual), _e = (expected);                                                        \
    double _err = rel_err(_a, _e);                                                                \
    std::printf("  [cmp] %-52s max rel err %.2e (%.15g vs %.15g)\n", std::string(what).c_str(), _err, _a, _e); \
    EXPECT_LE(_err, rtol) << what << ": " << _a << " vs " << _e;                                  \
  } while (0)

// One golden problem: the network, its weights, the data and the likelihood.
struct Case {
  std::string name;
  const json* in = nullptr;
  const json* out = nullptr;
  bool classification = false;
  int64_t N = 0, D = 0, H = 0, K = 0;
  double prior = 1.0, sigma = 1.0;
  std::shared_ptr<Model> model;
  Dataset data;
  Likelihood lik;
  at::Tensor theta, x_test;
};

Case make_case(const std::string& name) {
  Case c;
  c.name = name;
  c.in = &golden().at("inputs").at(name);
  c.out = &golden().at("outputs").at(name);
  const json& in = *c.in;
  c.classification = in.at("likelihood") == "classification";
  c.N = in.at("N");
  c.D = in.at("D");
  c.H = in.at("hidden");
  c.K = in.at("K");
  c.prior = in.at("prior_precision");
  c.sigma = in.at("sigma_noise");
  c.model = make_model("mlp:" + std::to_string(c.H) + "?act=tanh", {c.D}, c.K, at::kDouble);
  // Golden parameter_ordering: [W1 (H*D row-major), b1, W2 (K*H), b2], as credence's layout.
  const json& w = in.at("weights");
  c.theta = at::cat({T(w.at("0.weight")).reshape({-1}), T(w.at("0.bias")), T(w.at("2.weight")).reshape({-1}),
                     T(w.at("2.bias"))});
  c.data.x = T(in.at("X"));
  c.data.name = "golden:" + name;
  c.data.standardize_inputs = false;
  if (c.classification) {
    c.data.y = T(in.at("y")).to(at::kLong);
    c.data.task = Task::Classification;
    c.data.num_classes = c.K;
    c.lik = Likelihood::parse("categorical", c.data);
  } else {
    c.data.y = T(in.at("y"));
    c.data.task = Task::Regression;
    char spec[64];
    std::snprintf(spec, sizeof spec, "gaussian?sigma=%.17g", c.sigma);
    c.lik = Likelihood::parse(spec, c.data);
  }
  c.x_test = T(in.at("X_test"));
  return c;
}

const Case& case_a() {
  static const Case c = make_case("case_A_classification");
  return c;
}
const Case& case_b() {
  static const Case c = make_case("case_B_regression");
  return c;
}

struct Variant {
  const char* key;     // golden outputs.<case>.<key>
  const char* subset;  // credence subset spec
  Structure structure;
};
const Variant kVariants[] = {{"last_layer_full", "last_layer", Structure::Full},
                             {"last_layer_kron", "last_layer", Structure::Kron},
                             {"all_full", "all", Structure::Full},
                             {"all_diag", "all", Structure::Diag},
                             {"all_kron", "all", Structure::Kron}};

Curvature curvature_of(const Case& c, const ParamSubset& s, Structure structure) {
  return compute_curvature(*c.model, c.lik, s, c.theta, c.data, structure, CurvatureKind::GGN,
                           /*batch_size=*/c.N);  // one batch, as the golden values (KFAC depends on it)
}

std::unique_ptr<LaplacePosterior> posterior_of(const Case& c, const char* subset, Structure structure) {
  auto s = ParamSubset::parse(subset, *c.model);
  auto curv = curvature_of(c, s, structure);
  return std::make_unique<LaplacePosterior>(c.theta, s, std::move(curv), at::full({1}, c.prior, at::kDouble),
                                            c.sigma, 1.0);
}

TEST(LaplaceGolden, ModelLayoutAndOutputsMatchTheGoldenNetwork) {
  for (const Case* c : {&case_a(), &case_b()}) {
    SCOPED_TRACE(c->name);
    const auto& blocks = c->model->layout().blocks;
    ASSERT_EQ(blocks.size(), 4u);
    EXPECT_EQ(blocks[0].shape, (std::vector<int64_t>{c->H, c->D}));
    EXPECT_EQ(blocks[1].shape, (std::vector<int64_t>{c->H}));
    EXPECT_EQ(blocks[2].shape, (std::vector<int64_t>{c->K, c->H}));
    EXPECT_EQ(blocks[3].shape, (std::vector<int64_t>{c->K}));
    EXPECT_EQ(c->model->layout().size, c->theta.numel());
    auto f = c->model->forward(c->data.x, c->theta);
    EXPECT_CLOSE_T(c->name + " train_outputs_f", f, T(c->out->at("train_outputs_f")), kRtol);
    EXPECT_CLOSE_D(c->name + " train_log_likelihood", -c->lik.nll(f, c->data.y).item<double>(),
                   c->out->at("train_log_likelihood").get<double>(), kRtol);
    // Subset order: the last layer is the last K*H + K entries; all is the whole vector in order.
    auto ll = ParamSubset::parse("last_layer", *c->model);
    EXPECT_TRUE(at::equal(ll.gather(c->theta), T(c->out->at("last_layer_full").at("mean"))));
    auto all = ParamSubset::parse("all", *c->model);
    EXPECT_TRUE(at::equal(all.gather(c->theta), T(c->out->at("all_full").at("mean"))));
  }
}

void check_variant(const Case& c, const Variant& v) {
  SCOPED_TRACE(c.name + "/" + v.key);
  const json& g = c.out->at(v.key);
  const std::string tag = std::string(c.classification ? "A " : "B ") + v.key + " ";
  auto subset = ParamSubset::parse(v.subset, *c.model);
  ASSERT_EQ(subset.size, g.at("n_params").get<int64_t>());
  auto curv = curvature_of(c, subset, v.structure);

  // Curvature (unit noise, summed over the data).
  switch (v.structure) {
    case Structure::Full: EXPECT_CLOSE_T(tag + "H (GGN)", curv.dense(), T(g.at("H_ggn")), kRtol); break;
    case Structure::Diag: EXPECT_CLOSE_T(tag + "H diag", curv.diag, T(g.at("H_ggn_diag")), kRtol); break;
    case Structure::Kron: {
      EXPECT_CLOSE_T(tag + "H kron dense", curv.dense(), T(g.at("H_kron_dense")), kRtol);
      // Factors one by one, undoing laplace-torch's split: asdfghjkl (classification) stores
      // F0 = sum G, F1 = mean a a^T as credence does; BackPACK KFLR (regression) stores
      // sqrt(2) * sum G and mean a a^T / sqrt(2) (conventions.kron_factor_definitions).
      const double c0 = c.classification ? 1.0 : std::sqrt(2.0);
      const auto& kf = g.at("kron_factors");
      ASSERT_EQ(kf.size(), curv.kron.size());
      for (size_t i = 0; i < kf.size(); ++i) {
        const auto& b = curv.kron[i];
        const std::string p = tag + kf[i].at("param").get<std::string>();
        if (kf[i].at("kind") == "kronecker") {
          EXPECT_CLOSE_T(p + " F0 (output side)", c0 * b.A, T(kf[i].at("factor_0_output_side")), kRtol);
          EXPECT_CLOSE_T(p + " F1 (input side)", b.B / c0, T(kf[i].at("factor_1_input_side")), kRtol);
        } else {
          ASSERT_EQ(b.in, 1);
          EXPECT_CLOSE_T(p + " bias block", b.A * b.B.item<double>(), T(kf[i].at("matrix")), kRtol);
        }
      }
      break;
    }
  }

  LaplacePosterior post(c.theta, subset, std::move(curv), at::full({1}, c.prior, at::kDouble), c.sigma, 1.0);
  // Posterior precision and covariance.
  auto P = post.precision_dense();
  switch (v.structure) {
    case Structure::Full:
      EXPECT_CLOSE_T(tag + "posterior precision", P, T(g.at("posterior_precision")), kRtol);
      EXPECT_CLOSE_T(tag + "posterior covariance", at::linalg_inv(P), T(g.at("posterior_covariance")), kRtol);
      break;
    case Structure::Diag:
      EXPECT_CLOSE_T(tag + "posterior precision diag", at::diagonal(P), T(g.at("posterior_precision_diag")), kRtol);
      EXPECT_TRUE(at::equal(P, at::diag(at::diagonal(P))));
      EXPECT_CLOSE_T(tag + "posterior variance diag", 1.0 / at::diagonal(P), T(g.at("posterior_variance_diag")),
                     kRtol);
      break;
    case Structure::Kron:
      EXPECT_CLOSE_T(tag + "posterior precision dense", P, T(g.at("posterior_precision_dense")), kRtol);
      EXPECT_CLOSE_T(tag + "posterior covariance dense", at::linalg_inv(P), T(g.at("posterior_covariance_dense")),
                     kRtol);
      break;
  }
  // Marginal likelihood and its parts.
  EXPECT_CLOSE_D(tag + "log_det_posterior_precision", post.log_det_precision(),
                 g.at("log_det_posterior_precision").get<double>(), kRtol);
  // log det of the prior is exactly 0 here (prior precision 1): compare absolutely.
  EXPECT_NEAR(post.log_det_prior(), g.at("log_det_prior_precision").get<double>(), 1e-12);
  EXPECT_CLOSE_D(tag + "scatter", post.scatter(), g.at("scatter").get<double>(), kRtol);
  EXPECT_CLOSE_D(tag + "log_likelihood", post.log_likelihood(), g.at("log_likelihood").get<double>(), kRtol);
  EXPECT_CLOSE_D(tag + "log_marginal_likelihood", post.log_marginal_likelihood(),
                 g.at("log_marginal_likelihood").get<double>(), kRtol);
  // The log-determinant from the factorization agrees with the dense precision.
  EXPECT_NEAR(post.log_det_precision(), std::get<1>(at::linalg_slogdet(P)).item<double>(), 1e-10);

  // GLM predictive on the test inputs.
  const json& pg = g.at("predictive");
  at::Tensor f_mu;
  auto fvar = post.function_variance(*c.model, c.x_test, /*diag_only=*/false, &f_mu);
  EXPECT_CLOSE_T(tag + "predictive f_mu", f_mu, T(pg.at("f_mu")), kRtol);
  EXPECT_CLOSE_T(tag + "predictive f_var", fvar, T(pg.at("f_var")), kRtol);
  auto fdiag = post.function_variance(*c.model, c.x_test, /*diag_only=*/true);
  EXPECT_CLOSE_T(tag + "predictive f_var (diag_only)", fdiag, at::diagonal(T(pg.at("f_var")), 0, 1, 2), kRtol);
  auto pred = post.predict(*c.model, c.lik, c.x_test, 0.0, 1.0, {});
  if (c.classification) {
    EXPECT_CLOSE_T(tag + "probit probs", pred.probs, T(pg.at("probit_probs")), kRtol);
  } else {
    EXPECT_CLOSE_T(tag + "f_var_diag", fdiag.select(1, 0), T(pg.at("f_var_diag")), kRtol);
    EXPECT_CLOSE_T(tag + "pred_mean", pred.mean, T(pg.at("pred_mean")), kRtol);
    EXPECT_CLOSE_T(tag + "total_var", pred.var, T(pg.at("total_var")), kRtol);
  }
}

TEST(LaplaceGolden, ClassificationCurvaturePosteriorMarglikPredictive) {
  for (const auto& v : kVariants) check_variant(case_a(), v);
}

TEST(LaplaceGolden, RegressionCurvaturePosteriorMarglikPredictive) {
  for (const auto& v : kVariants) check_variant(case_b(), v);
}

// The GGN of the full network by brute force (autograd Jacobian rows over all parameters), a check
// of the golden file's own reading independent of laplace-torch: they must agree with H_ggn.
TEST(LaplaceGolden, FullGgnEqualsBruteForceJacobianGgn) {
  for (const Case* c : {&case_a(), &case_b()}) {
    SCOPED_TRACE(c->name);
    const int64_t P = c->theta.numel();
    auto th = c->theta.clone().requires_grad_(true);
    auto f = c->model->forward(c->data.x, th);  // [N, K]
    auto Hs = at::zeros({P, P}, at::kDouble);
    for (int64_t n = 0; n < c->N; ++n) {
      std::vector<at::Tensor> rows;
      for (int64_t k = 0; k < c->K; ++k) {
        auto g = at::zeros_like(f);
        g[n][k] = 1.0;
        th.mutable_grad() = at::Tensor();
        f.backward(g, /*retain_graph=*/true);
        rows.push_back(th.grad().clone());
      }
      auto J = at::stack(rows);  // [K, P]
      at::Tensor Lam;
      if (c->classification) {
        auto p = at::softmax(f.detach()[n], 0);
        Lam = at::diag(p) - at::outer(p, p);
      } else {
        Lam = at::eye(1, at::kDouble);
      }
      Hs += J.t().mm(Lam).mm(J);
    }
    EXPECT_CLOSE_T(c->name + " brute-force GGN vs golden", Hs, T(c->out->at("all_full").at("H_ggn")), kRtol);
  }
}

// Marginal-likelihood tuning of one prior precision on the last-layer KFAC posterior: credence's
// L-BFGS converges, so it matches the exact maximiser (not laplace-torch's 100 Adam steps).
TEST(LaplaceGolden, MarglikTuningReachesTheExactMaximiser) {
  for (const Case* c : {&case_a(), &case_b()}) {
    SCOPED_TRACE(c->name);
    const json& g = c->out->at("last_layer_kron_marglik");
    auto post = posterior_of(*c, "last_layer", Structure::Kron);
    optimize_marglik(*post, /*per_layer=*/false, /*tune_sigma=*/false);
    auto prior = post->prior_precision();
    EXPECT_TRUE(at::allclose(prior, prior[0].expand_as(prior), 0, 0));  // one value for all
    EXPECT_CLOSE_D(c->name + " argmax prior precision", prior[0].item<double>(),
                   g.at("exact_argmax_prior_precision_NOT_from_laplace_torch").get<double>(), 1e-6);
    EXPECT_CLOSE_D(c->name + " max log marginal likelihood", post->log_marginal_likelihood(),
                   g.at("exact_max_log_marginal_likelihood_NOT_from_laplace_torch").get<double>(), 1e-9);
    EXPECT_EQ(post->sigma(), c->sigma);  // sigma not tuned
    // The golden predictive_at_optimum is at Adam's (unconverged) prior precision: at that value
    // credence's GLM predictive must reproduce it.
    post->set_hyper(at::full({1}, g.at("prior_precision").get<double>(), at::kDouble), c->sigma);
    EXPECT_CLOSE_D(c->name + " lml at Adam's prior precision", post->log_marginal_likelihood(),
                   g.at("log_marginal_likelihood_at_optimum").get<double>(), kRtol);
    const json& pg = g.at("predictive_at_optimum");
    auto fvar = post->function_variance(*c->model, c->x_test, false);
    EXPECT_CLOSE_T(c->name + " f_var at Adam's prior precision", fvar, T(pg.at("f_var")), kRtol);
  }
}

// laplace-torch's 100 Adam steps (lr 0.1, betas 0.9/0.999, eps 1e-8, on log prior precision) on
// credence's differentiable log marginal likelihood: checks its gradient along the whole path.
TEST(LaplaceGolden, AdamOnTheDifferentiableMarglikFollowsTheGoldenTrajectory) {
  for (const Case* c : {&case_a(), &case_b()}) {
    SCOPED_TRACE(c->name);
    const json& g = c->out->at("last_layer_kron_marglik");
    auto traj = T(g.at("adam_trajectory_prior_precision"));
    auto post = posterior_of(*c, "last_layer", Structure::Kron);
    const double lr = 0.1, b1 = 0.9, b2 = 0.999, eps = 1e-8;
    double x = 0.0, m = 0.0, v = 0.0;
    auto log_sigma = at::full({}, std::log(c->sigma), at::kDouble);
    std::vector<double> path;
    for (int t = 1; t <= 100; ++t) {
      auto lp = at::full({1}, x, at::kDouble).requires_grad_(true);
      auto loss = -post->log_marginal_likelihood(lp, log_sigma);
      loss.backward();
      double grad = lp.grad().item<double>();
      m = b1 * m + (1 - b1) * grad;
      v = b2 * v + (1 - b2) * grad * grad;
      double denom = std::sqrt(v) / std::sqrt(1 - std::pow(b2, t)) + eps;
      x -= lr / (1 - std::pow(b1, t)) * m / denom;
      path.push_back(std::exp(x));
    }
    EXPECT_CLOSE_T(c->name + " Adam trajectory", at::tensor(path, at::kDouble), traj, 1e-7);
    EXPECT_CLOSE_D(c->name + " Adam result", path.back(), g.at("prior_precision").get<double>(), 1e-7);
  }
}

// Full and diagonal curvatures are sums over examples, so any batching gives the golden values.
// credence's KFAC sums the output factor and averages the input factor over all the data before
// taking the product, so it does not depend on the batching either (laplace-torch's does with
// several batches: conventions.data_batching), and several batches reproduce the one-batch golden.
TEST(LaplaceGolden, CurvatureDoesNotDependOnTheBatching) {
  for (const Case* c : {&case_a(), &case_b()}) {
    for (const auto& v : kVariants) {
      SCOPED_TRACE(c->name + "/" + v.key);
      auto s = ParamSubset::parse(v.subset, *c->model);
      auto one = curvature_of(*c, s, v.structure);
      auto many = compute_curvature(*c->model, c->lik, s, c->theta, c->data, v.structure, CurvatureKind::GGN,
                                    /*batch_size=*/5);
      EXPECT_EQ(many.n, c->N);
      EXPECT_TRUE(at::allclose(many.dense(), one.dense(), 1e-12, 1e-12));
      EXPECT_NEAR(many.nll, one.nll, 1e-10);
      EXPECT_NEAR(many.sum_sq_residual, one.sum_sq_residual, 1e-10);
      const json& g = c->out->at(v.key);
      const char* key = v.structure == Structure::Full ? "H_ggn" : v.structure == Structure::Kron ? "H_kron_dense"
                                                                                                   : "H_ggn_diag";
      auto expected = T(g.at(key));
      EXPECT_LE(max_rel_err(v.structure == Structure::Diag ? many.diag : many.dense(), expected), kRtol);
    }
  }
}

// The per-layer prior path of the differentiable marginal likelihood (one log prior per layer;
// Cholesky for the full structure) agrees with the scalar path and the golden values.
TEST(LaplaceGolden, PerLayerPriorPathOfTheMarglikMatches) {
  for (const Case* c : {&case_a(), &case_b()}) {
    for (const auto& v : kVariants) {
      if (std::string(v.subset) != "all") continue;
      SCOPED_TRACE(c->name + "/" + v.key);
      auto post = posterior_of(*c, v.subset, v.structure);
      auto lp = at::full({2}, std::log(c->prior), at::kDouble);
      double lml = post->log_marginal_likelihood(lp, at::full({}, std::log(c->sigma), at::kDouble)).item<double>();
      EXPECT_LE(rel_err(lml, c->out->at(v.key).at("log_marginal_likelihood").get<double>()), kRtol);
      // Different per-layer values: the closed form against the dense precision.
      const double p0 = 0.3, p1 = 2.5;
      auto prior = at::empty({post->subset().size}, at::kDouble);
      const auto& L = post->subset().layers;
      prior.narrow(0, L[0].offset, L[0].out * (L[0].in + 1)).fill_(p0);
      prior.narrow(0, L[1].offset, L[1].out * (L[1].in + 1)).fill_(p1);
      post->set_hyper(prior, c->sigma);
      auto P = post->precision_dense();
      auto th = post->subset().gather(c->theta);
      double expected = post->log_likelihood() -
                        0.5 * (std::get<1>(at::linalg_slogdet(P)).item<double>() - at::log(prior).sum().item<double>() +
                               (prior * th * th).sum().item<double>());
      EXPECT_LE(rel_err(post->log_marginal_likelihood(), expected), 1e-12);
      double lml2 = post->log_marginal_likelihood(at::log(at::tensor({p0, p1}, at::kDouble)),
                                                  at::full({}, std::log(c->sigma), at::kDouble))
                        .item<double>();
      EXPECT_LE(rel_err(lml2, expected), 1e-12);
    }
  }
}

// Tuning per-layer priors and the noise together ends at a stationary point of the marginal
// likelihood (no golden value: laplace-torch's default keeps sigma fixed).
TEST(LaplaceGolden, MarglikTuningWithSigmaEndsAtAStationaryPoint) {
  const Case& c = case_b();
  for (const auto& v : kVariants) {
    SCOPED_TRACE(v.key);
    auto post = posterior_of(c, v.subset, v.structure);
    const double before = post->log_marginal_likelihood();
    optimize_marglik(*post, /*per_layer=*/true, /*tune_sigma=*/true);
    const double after = post->log_marginal_likelihood();
    EXPECT_GT(after, before);
    const auto& L = post->subset().layers;
    std::vector<at::Tensor> lps;
    for (const auto& l : L) lps.push_back(at::log(post->prior_precision()[l.offset]));
    auto lp = at::stack(lps).detach().requires_grad_(true);
    auto ls = at::full({}, std::log(post->sigma()), at::kDouble).requires_grad_(true);
    auto lml = post->log_marginal_likelihood(lp, ls);
    EXPECT_NEAR(lml.item<double>(), after, 1e-9);
    lml.backward();
    EXPECT_LT(lp.grad().abs().max().item<double>(), 1e-5);
    EXPECT_LT(std::abs(ls.grad().item<double>()), 1e-5);
    EXPECT_NE(post->sigma(), c.sigma);
  }
}

// Sampled covariance matches precision_dense()^{-1} within Monte-Carlo error, and entries outside
// the subset stay at theta.
TEST(LaplacePosteriorSampling, SampleCovarianceMatchesInversePrecision) {
  const Case& c = case_b();
  const int64_t S = 20000;
  for (const auto& v : kVariants) {
    SCOPED_TRACE(v.key);
    auto post = posterior_of(c, v.subset, v.structure);
    const auto& sub = post->subset();
    auto draws = post->sample(S, 11);
    ASSERT_EQ(draws.sizes(), (std::vector<int64_t>{S, c.theta.numel()}));
    EXPECT_EQ(draws.scalar_type(), at::kDouble);
    // Outside the subset: exactly theta.
    auto mask = at::ones({c.theta.numel()}, at::kBool);
    mask.index_fill_(0, sub.index, false);
    EXPECT_TRUE(at::equal(draws.index({at::indexing::Slice(), mask}),
                          c.theta.index({mask}).unsqueeze(0).expand({S, -1})));
    auto z = sub.gather(draws);  // [S, K]
    auto Sigma = at::linalg_inv(post->precision_dense());
    auto mean = z.mean(0);
    auto d = z - mean;
    auto C = d.t().mm(d) / double(S - 1);
    // Standard errors: sqrt(Sigma_ii / S) for the mean, sqrt((Sigma_ii Sigma_jj + Sigma_ij^2) / S)
    // for a covariance entry; allow 5 of them per entry.
    auto var = at::diagonal(Sigma);
    auto se_mean = (var / double(S)).sqrt();
    auto se_cov = ((at::outer(var, var) + Sigma * Sigma) / double(S)).sqrt();
    double zm = ((mean - sub.gather(c.theta)).abs() / se_mean).max().item<double>();
    double zc = ((C - Sigma).abs() / se_cov).max().item<double>();
    std::printf("  [mc]  B %-16s max |mean err| / se %.2f, max |cov err| / se %.2f (K = %ld)\n", v.key, zm, zc,
                static_cast<long>(sub.size));
    EXPECT_LT(zm, 5.0);
    EXPECT_LT(zc, 5.0);
    // Keyed by seed: same seed, same draws.
    EXPECT_TRUE(at::equal(post->sample(3, 11), post->sample(3, 11)));
    EXPECT_FALSE(at::equal(post->sample(3, 11), post->sample(3, 12)));
  }
}

TEST(LaplacePosteriorIo, SaveLoadRoundTrips) {
  for (const Case* c : {&case_a(), &case_b()}) {
    for (const auto& v : kVariants) {
      SCOPED_TRACE(c->name + "/" + v.key);
      auto post = posterior_of(*c, v.subset, v.structure);
      post->set_hyper(at::full({1}, 0.7, at::kDouble), c->sigma);  // a non-default prior survives
      post->link = GlmLink::MC;
      TensorMap tensors;
      json meta;
      post->save(tensors, meta);
      auto back = LaplacePosterior::load(tensors, json::parse(meta.dump()), *c->model);
      EXPECT_EQ(back->kind(), "laplace");
      EXPECT_TRUE(at::equal(back->theta(), post->theta()));
      EXPECT_TRUE(at::equal(back->prior_precision(), post->prior_precision()));
      EXPECT_EQ(back->sigma(), post->sigma());
      EXPECT_EQ(back->link, GlmLink::MC);
      EXPECT_EQ(back->predictive_type, LaplacePredictive::GLM);
      EXPECT_EQ(back->subset().spec, v.subset);
      EXPECT_TRUE(at::allclose(back->precision_dense(), post->precision_dense(), 1e-14, 1e-14));
      EXPECT_TRUE(at::allclose(back->function_variance(*c->model, c->x_test, false),
                               post->function_variance(*c->model, c->x_test, false), 1e-13, 1e-15));
      EXPECT_NEAR(back->log_marginal_likelihood(), post->log_marginal_likelihood(), 1e-10);
      EXPECT_TRUE(at::equal(back->sample(4, 3), post->sample(4, 3)));
    }
  }
}

}  // namespace
}  // namespace credence
