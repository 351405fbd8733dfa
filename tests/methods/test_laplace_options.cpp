// Laplace options beyond the closed-form cases: subnetworks, Monte-Carlo Fisher, the Laplace
// bridge, validation-tuned priors.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>
#include <unistd.h>

#include <cmath>

#include "credence/credence.h"
#include "credence/methods/laplace.h"
#include "credence/posterior/laplace.h"

namespace credence {
namespace {
struct Setup {
  Dataset data;
  std::shared_ptr<Model> model;
  Likelihood lik;
  torch::Tensor theta;
};
// A quiet fit request on `data` with an `mlp:8`.
FitRequest quick_request(const std::string& data, int64_t epochs, const std::string& method) {
  FitRequest req;
  req.data = load_data(data);
  req.model = "mlp:8";
  req.train.epochs = epochs;
  req.train.quiet = true;
  req.method = method;
  return req;
}
Setup setup(const std::string& spec) {
  Setup s;
  s.data = load_data(spec, {torch::kFloat64}).fit;
  s.model = make_model("mlp:6?act=tanh", {2}, 2, torch::kFloat64);
  s.lik = Likelihood::parse("categorical", s.data);
  s.theta = s.model->init_params(1);
  return s;
}
}  // namespace

TEST(LaplaceSubnetwork, CurvatureAndPredictiveAreTheSubmatrices) {
  auto s = setup("synthetic:moons?n=40");
  auto all = ParamSubset::parse("all", *s.model);
  auto full = compute_curvature(*s.model, s.lik, all, s.theta, s.data, Structure::Full, CurvatureKind::GGN, 16);
  auto index = at::tensor({31, 2, 17, 19, 13, 25}, at::kLong);  // weights and biases of both layers (P = 32)
  auto sub = ParamSubset::from_index("subnetwork:6", *s.model, index);
  ASSERT_EQ(sub.size, 6);
  ASSERT_TRUE(sub.partial());
  auto sorted = std::get<0>(index.sort());
  auto expected = full.full.index_select(0, sorted).index_select(1, sorted);
  auto part = compute_curvature(*s.model, s.lik, sub, s.theta, s.data, Structure::Full, CurvatureKind::GGN, 16);
  EXPECT_TRUE(at::allclose(part.full, expected, 1e-10, 1e-12));
  auto diag = compute_curvature(*s.model, s.lik, sub, s.theta, s.data, Structure::Diag, CurvatureKind::GGN, 16);
  EXPECT_TRUE(at::allclose(diag.diag, expected.diagonal(), 1e-10, 1e-12));
  EXPECT_THROW(compute_curvature(*s.model, s.lik, sub, s.theta, s.data, Structure::Kron, CurvatureKind::GGN),
               NotSupported);

  // GLM function variance over the subnetwork: J_sub Sigma J_sub^T with autograd Jacobians.
  LaplacePosterior post(s.theta, sub, part, at::full({1}, 2.0, at::kDouble), 1.0, 1.0);
  auto x = s.data.x.narrow(0, 0, 3);
  auto fvar = post.function_variance(*s.model, x, false);
  auto cov = at::inverse(post.precision_dense());
  for (int64_t i = 0; i < 3; ++i) {
    auto th = s.theta.clone().requires_grad_(true);
    auto f = s.model->forward(x.narrow(0, i, 1), th).squeeze(0);
    std::vector<torch::Tensor> rows;
    for (int64_t k = 0; k < 2; ++k)
      rows.push_back(torch::autograd::grad({f[k]}, {th}, {}, true)[0].index_select(0, sorted));
    auto J = at::stack(rows);
    EXPECT_TRUE(at::allclose(fvar[i], J.mm(cov).mm(J.t()), 1e-10, 1e-12));
  }
  // Samples move only the chosen entries.
  auto draws = post.sample(4, 0);
  auto moved = (draws - s.theta).abs().sum(0) > 0;
  EXPECT_EQ(moved.sum().item<int64_t>(), 6);
  EXPECT_TRUE(moved.index_select(0, sorted).all().item<bool>());
}

TEST(LaplaceSubnetwork, MethodPicksInformedWeightsAndSavesThem) {
  FitRequest req;
  req.data = load_data("synthetic:moons?n=200");
  req.model = "mlp:16";
  req.train.epochs = 30;
  req.train.quiet = true;
  req.method = "laplace:subset=subnetwork:20,hessian=full";
  auto fitted = fit(req);
  auto* post = dynamic_cast<LaplacePosterior*>(fitted.posterior.get());
  ASSERT_NE(post, nullptr);
  EXPECT_EQ(post->subset().size, 20);
  char dir[] = "/tmp/credence-subXXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  std::string path = std::string(dir) + "/sub.crd";
  fitted.save(path);
  auto loaded = FittedModel::load(path);
  auto test = load_data("synthetic:moons?n=100&part=test").fit;
  EXPECT_TRUE(at::allclose(loaded.predict(test).probs, fitted.predict(test).probs, 1e-6, 1e-7));
  std::remove(path.c_str());
  rmdir(dir);
  req.method = "laplace:subset=subnetwork:0";
  EXPECT_THROW(fit(req), InvalidArgument);
}

TEST(LaplaceCurvature, MonteCarloFisherAveragesToTheGgn) {
  // One example repeated: the MC Fisher's mean over 4000 sampled labels approaches the GGN.
  auto s = setup("synthetic:moons?n=1");
  Dataset rep = s.data.subset(at::zeros({4000}, at::kLong));
  auto all = ParamSubset::parse("all", *s.model);
  auto ggn = compute_curvature(*s.model, s.lik, all, s.theta, rep, Structure::Diag, CurvatureKind::GGN, 500);
  auto mc = compute_curvature(*s.model, s.lik, all, s.theta, rep, Structure::Diag, CurvatureKind::MC, 500, 7);
  double rel = ((mc.diag - ggn.diag).norm() / ggn.diag.norm()).item<double>();
  EXPECT_LT(rel, 0.1);
  auto mc2 = compute_curvature(*s.model, s.lik, all, s.theta, rep, Structure::Diag, CurvatureKind::MC, 500, 8);
  EXPECT_FALSE(at::allclose(mc.diag, mc2.diag));  // keyed by the seed
}

TEST(LaplacePredictive, BridgeMatchesItsFormula) {
  auto s = setup("synthetic:moons?n=30");
  auto sub = ParamSubset::parse("last_layer", *s.model);
  auto curv = compute_curvature(*s.model, s.lik, sub, s.theta, s.data, Structure::Kron, CurvatureKind::GGN);
  LaplacePosterior post(s.theta, sub, curv, at::full({1}, 1.0, at::kDouble), 1.0, 1.0);
  post.link = GlmLink::Bridge;
  auto x = s.data.x.narrow(0, 0, 5);
  torch::Tensor mu;
  auto var = post.function_variance(*s.model, x, true, &mu);
  auto p = post.predict(*s.model, s.lik, x, 0.0, 1.0, {});
  const double C = 2;
  for (int64_t i = 0; i < 5; ++i) {
    double a[2];
    for (int k = 0; k < 2; ++k) {
      double cross = 0;
      for (int l = 0; l < 2; ++l) cross += std::exp(mu[i][k].item<double>() - mu[i][l].item<double>());
      a[k] = (1 - 2 / C + cross / (C * C)) / var[i][k].item<double>();
    }
    EXPECT_NEAR(p.probs[i][0].item<double>(), a[0] / (a[0] + a[1]), 1e-12);
  }
}

TEST(LaplacePrior, ValidationGridNeedsAValidationPart) {
  FitRequest req;
  req.data = load_data("synthetic:moons?n=200&holdout=val:0.25");
  req.model = "mlp:8";
  req.train.epochs = 20;
  req.train.quiet = true;
  req.method = "laplace:prior=val";
  auto fitted = fit(req);
  auto* post = dynamic_cast<LaplacePosterior*>(fitted.posterior.get());
  double exponent = 4 * std::log10(post->prior_precision()[0].item<double>());
  EXPECT_NEAR(exponent, std::round(exponent), 1e-6);  // a point of the 10^(i/4) grid
  req.data = load_data("synthetic:moons?n=200");
  EXPECT_THROW(fit(req), InvalidArgument);
}

// A fit that starts from MAP and predicts worse on the validation part says so; one that does not,
// does not.
TEST(LaplacePrior, EndingWorseThanTheMapOnValidationIsReported) {
  auto req = quick_request("synthetic:moons?n=200&holdout=val:0.25", 30, "map");
  auto map = fit(req);
  req.map = &map;
  req.method = "laplace:prior=fixed:1e-6";  // a vague prior: near-uniform predictions
  auto vague = fit(req);
  EXPECT_GT(vague.info.at("val_nll").get<double>(), vague.info.at("map_val_nll").get<double>());
  ASSERT_TRUE(vague.info.contains("warnings"));
  EXPECT_NE(vague.info["warnings"][0].get<std::string>().find("ends worse than the MAP"), std::string::npos);
  req.method = "laplace:prior=fixed:1e8";  // the posterior is the MAP point
  auto tight = fit(req);
  EXPECT_NEAR(tight.info.at("val_nll").get<double>(), tight.info.at("map_val_nll").get<double>(), 1e-4);
  EXPECT_FALSE(tight.info.contains("warnings"));
}

}  // namespace credence

namespace credence {
// float32 dense factorizations of some sizes (151, 401) crash inside OpenBLAS's fallback kernels
// on processors it does not recognize; Laplace factorizes in float64.
TEST(LaplaceFull, Float32ModelsWithAwkwardSizesWork) {
  FitRequest req;
  req.data = load_data("synthetic:sine?n=100");
  req.model = "mlp:50?act=tanh";  // 151 parameters
  req.train.epochs = 5;
  req.train.quiet = true;
  req.method = "laplace:subset=all,hessian=full";
  auto fitted = fit(req);
  auto p = fitted.predict(load_data("synthetic:sine?n=50&part=test").fit);
  EXPECT_TRUE(at::isfinite(p.var).all().item<bool>());
  EXPECT_EQ(fitted.posterior->sample(3, 0).size(1), 151);
}
}  // namespace credence

namespace credence {
TEST(LaplaceLowRank, FullRankEqualsFullAndTopEigenpairsMatch) {
  auto data = load_data("synthetic:moons?n=50", {torch::kFloat64}).fit;
  auto model = make_model("mlp:5?act=tanh", {2}, 2, torch::kFloat64);  // 27 parameters
  auto lik = Likelihood::parse("categorical", data);
  auto theta = model->init_params(2);
  auto all = ParamSubset::parse("all", *model);
  auto full = compute_curvature(*model, lik, all, theta, data, Structure::Full, CurvatureKind::GGN, 16);
  auto low = compute_lowrank_curvature(*model, lik, all, theta, data, CurvatureKind::GGN, 27, 2, 16);
  EXPECT_TRUE(at::allclose(low.dense(), full.full, 1e-8, 1e-10));
  auto prior = at::full({1}, 0.5, at::kDouble);
  LaplacePosterior pf(theta, all, full, prior, 1.0, 1.0), pl(theta, all, low, prior, 1.0, 1.0);
  EXPECT_NEAR(pl.log_marginal_likelihood(), pf.log_marginal_likelihood(), 1e-8);
  EXPECT_NEAR(pl.log_det_precision(), pf.log_det_precision(), 1e-8);
  auto x = data.x.narrow(0, 0, 4);
  EXPECT_TRUE(at::allclose(pl.function_variance(*model, x, false), pf.function_variance(*model, x, false), 1e-8, 1e-10));
  auto s = pl.sample(30000, 4) - theta;
  auto emp = s.t().mm(s) / 30000.0;
  auto cov = at::inverse(pf.precision_dense());
  EXPECT_LT((emp - cov).abs().max().item<double>(), 0.05 * cov.diagonal().max().item<double>());

  // Rank 3 of 27: the top three eigenvalues of the exact matrix.
  auto top = compute_lowrank_curvature(*model, lik, all, theta, data, CurvatureKind::GGN, 3, 6, 16);
  auto exact = std::get<0>(at::linalg_eigh(full.full)).flip(0).narrow(0, 0, 3);
  EXPECT_TRUE(at::allclose(top.lowrank_values, exact, 1e-6, 1e-9));
  EXPECT_THROW(compute_lowrank_curvature(*model, lik, all, theta, data, CurvatureKind::GGN, 28), InvalidArgument);
}
}  // namespace credence

namespace credence {

// With a validation part, prior=auto ends with whichever of the evidence's prior and the MAP's own
// predicts the validation part better, and reports both (classification and regression with a
// learned noise).
TEST(LaplacePrior, AutoKeepsTheBetterOfTheEvidenceAndTheMapPriorOnValidation) {
  for (std::string data : {"synthetic:moons?n=200&holdout=val:0.25", "synthetic:sine?n=120&holdout=val:0.25"}) {
    SCOPED_TRACE(data);
    auto req = quick_request(data, 30, "map");
    auto map = fit(req);
    req.map = &map;
    std::map<std::string, double> val_nll;
    for (std::string prior : {"marglik", "fixed"}) {
      req.method = "laplace:subset=all,prior=" + prior;
      val_nll[prior] = fit(req).info.at("val_nll").get<double>();
    }
    req.method = "laplace:subset=all";
    auto automatic = fit(req);
    const auto choice = automatic.info.at("report").at("prior_choice");
    const std::string chosen = choice.at("chosen").get<std::string>();
    EXPECT_EQ(chosen, val_nll["marglik"] <= val_nll["fixed"] ? "marglik" : "fixed");
    EXPECT_NEAR(automatic.info.at("val_nll").get<double>(), std::min(val_nll["marglik"], val_nll["fixed"]), 1e-6);
    EXPECT_LE(choice.at("val_nll_" + chosen).get<double>(),
              choice.at(chosen == "fixed" ? "val_nll_marglik" : "val_nll_fixed").get<double>());
  }
  // Without a validation part there is nothing to compare.
  EXPECT_FALSE(fit(quick_request("synthetic:moons?n=200", 5, "laplace")).info.at("report").contains("prior_choice"));
}

}  // namespace credence
