// Learned Gaussian priors: a mean and per-tensor precisions that every method honours, the prior
// file, and meta-fit's empirical Bayes checked against closed forms on linear-Gaussian models.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cmath>
#include <filesystem>

#include <unistd.h>

#include "credence/credence.h"
#include "credence/core/rng.h"
#include "credence/fit/meta.h"
#include "credence/posterior/certified.h"
#include "credence/posterior/laplace.h"

namespace credence {
namespace {

std::string temp_path(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() / ("credence_learned_prior_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto p = dir / name;
  std::filesystem::remove(p);
  return p.string();
}

// log N(y; X1 m, sigma^2 I + X1 diag(1 / p) X1^T).
double log_evidence(const torch::Tensor& X1, const torch::Tensor& y, const torch::Tensor& m, const torch::Tensor& p,
                    double sigma) {
  const int64_t n = y.size(0);
  auto S = sigma * sigma * at::eye(n, at::kDouble) + (X1 / p).mm(X1.t());
  auto L = at::linalg_cholesky(S);
  auto z = at::linalg_solve_triangular(L, (y - X1.mv(m)).view({n, 1}), /*upper=*/false);
  return (-0.5 * z.pow(2).sum() - at::log(at::diagonal(L)).sum() - 0.5 * n * std::log(2 * M_PI)).item<double>();
}

}  // namespace

TEST(LearnedPrior, MeanCentresTheDensityAndItsGradient) {
  auto m = make_model("mlp:4", {3}, 2, torch::kFloat64);
  auto p = GaussianPrior::per_layer({1.0, 10.0}, *m);
  p.mean = at::linspace(-1, 1, m->layout().size, at::kDouble);
  auto theta = at::randn({m->layout().size}, cpu_generator(1), at::kDouble).requires_grad_(true);
  auto nlp = p.neg_log_prob(theta);
  nlp.backward();
  auto d = theta.detach() - p.mean;
  EXPECT_NEAR(nlp.item<double>(), 0.5 * (p.precision * d * d).sum().item<double>(), 1e-12);
  auto grad = at::zeros_like(d);
  double value = p.add_grad(theta.detach(), grad, 0.5);
  EXPECT_NEAR(value, 0.5 * nlp.item<double>(), 1e-12);
  EXPECT_TRUE(at::allclose(grad, 0.5 * theta.grad(), 1e-12, 1e-14));
  // Stacked draws [S, P].
  auto two = at::stack({theta.detach(), p.mean});
  EXPECT_NEAR(p.neg_log_prob(two)[1].item<double>(), 0.0, 1e-14);
}

TEST(LearnedPrior, FileRoundTripsAndRefusesWhatDoesNotFit) {
  auto m = make_model("mlp:4", {3}, 1, torch::kFloat32);
  PriorFile f;
  f.prior = GaussianPrior::per_layer({2.0, 8.0}, *m);
  f.prior.mean = at::linspace(-1, 1, m->layout().size);
  f.has_units = true;
  f.standardizer.x_mean = at::tensor({1.0, 2.0, 3.0}, at::kDouble);
  f.standardizer.x_std = at::tensor({0.5, 1.0, 2.0}, at::kDouble);
  f.standardizer.y_mean = 4.0;
  f.standardizer.y_std = 3.0;
  f.model = "mlp:4";
  f.info = {{"sigma", 0.25}};
  auto path = temp_path("roundtrip.crd");
  save_prior_file(path, f, false);
  EXPECT_THROW(save_prior_file(path, f, false), Error);  // never replaced without asking
  auto g = load_prior_file(path);
  EXPECT_EQ(g.prior.source, path);
  EXPECT_EQ(g.prior.describe(), "file:" + path);
  EXPECT_TRUE(g.has_units);
  EXPECT_DOUBLE_EQ(g.standardizer.y_std, 3.0);
  EXPECT_DOUBLE_EQ(g.info.at("sigma").get<double>(), 0.25);
  auto on_model = g.for_model(*m);
  EXPECT_EQ(on_model.precision.scalar_type(), at::kFloat);
  EXPECT_TRUE(at::equal(on_model.precision, f.prior.precision));
  EXPECT_TRUE(at::equal(on_model.mean, f.prior.mean));
  EXPECT_TRUE(g.prior.layer_precisions.empty());  // not an isotropic prior: no weight-decay shortcut
  auto other = make_model("mlp:5", {3}, 1);
  try {
    g.for_model(*other);
    ADD_FAILURE() << "a prior for another model was accepted";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("model the prior was learned for"), std::string::npos) << e.what();
  }
  EXPECT_THROW(load_prior_file(temp_path("missing.crd")), InvalidArgument);
  // A file that is no prior.
  auto posterior_like = temp_path("not_a_prior.crd");
  save_tensor_file(posterior_like, {{"format", "something-else"}}, {{"x", at::ones({2})}}, false);
  EXPECT_THROW(load_prior_file(posterior_like), InvalidArgument);
  // Spec forms.
  std::string p;
  EXPECT_TRUE(is_prior_file_spec("file:a/b.crd", &p));
  EXPECT_EQ(p, "a/b.crd");
  EXPECT_TRUE(is_prior_file_spec("prior.crd"));
  EXPECT_FALSE(is_prior_file_spec("auto"));
  EXPECT_FALSE(is_prior_file_spec("30"));
  EXPECT_FALSE(is_prior_file_spec("1e-3,2"));
  EXPECT_FALSE(is_prior_file_spec("gaussian:3"));
  EXPECT_TRUE(at::equal(GaussianPrior::parse("gaussian:3", *m).precision, GaussianPrior::parse("3", *m).precision));
  EXPECT_THROW(GaussianPrior::parse("laplace:3", *m), InvalidArgument);
}

// A file holding the isotropic prior gives today's fits bit for bit.
TEST(LearnedPrior, IsotropicFileReproducesTheIsotropicPriorExactly) {
  auto data = load_data("synthetic:sine?n=64&seed=2");
  auto test = load_data("synthetic:sine?n=20&part=test").fit;
  auto m = make_model("mlp:8", {1}, 1);
  PriorFile f;
  f.prior = GaussianPrior::isotropic(4.0, *m);
  f.model = "mlp:8";
  auto path = temp_path("isotropic.crd");
  save_prior_file(path, f, false);
  for (std::string method : {"map", "vi", "sgld:samples=4", "ivon", "laplace:prior=fixed", "swag", "ensemble:members=2",
                             "hmc:draws=6,warmup=6,chains=1"}) {
    FitRequest r;
    r.data = data;
    r.model = "mlp:8";
    r.method = method;
    r.train.epochs = 3;
    r.train.batch_size = 16;
    r.train.quiet = true;
    r.train.prior = "4";
    auto a = fit(r);
    r.train.prior = path;
    auto b = fit(r);
    auto pa = a.predict(test), pb = b.predict(test);
    EXPECT_TRUE(at::equal(pa.mean, pb.mean)) << method;
    EXPECT_TRUE(at::equal(pa.var, pb.var)) << method;
  }
}

// Under N(m, diag(1/p)) a linear-Gaussian model's posterior is N(mu, C) with
// C = (X1^T X1 / s^2 + diag p)^-1, mu = C (X1^T y / s^2 + p m); MAP finds mu, Laplace finds C
// and the evidence log N(y; X1 m, s^2 I + X1 diag(1/p) X1^T).
TEST(LearnedPrior, LinearGaussianPosteriorUnderAMeanPriorIsTheClosedForm) {
  auto raw = load_data("synthetic:linear?n=40&d=2&noise=0.5&seed=4", {torch::kFloat64}).fit;
  auto m = make_model("mlp:", {2}, 1, torch::kFloat64);
  const double sigma = 0.5;
  PriorFile f;
  f.prior.precision = at::tensor({4.0, 4.0, 0.5}, at::kDouble);  // [W (2), b]
  f.prior.mean = at::tensor({1.5, -1.0, 0.3}, at::kDouble);
  f.has_units = true;  // identity units: raw = standardized
  f.standardizer.x_mean = at::zeros({2}, at::kDouble);
  f.standardizer.x_std = at::ones({2}, at::kDouble);
  f.info = {{"sigma", sigma}};
  f.model = "mlp:";
  auto path = temp_path("linear_mean.crd");
  save_prior_file(path, f, false);
  auto X1 = at::cat({raw.x, at::ones({raw.size(), 1}, at::kDouble)}, 1);
  auto P = X1.t().mm(X1) / (sigma * sigma) + at::diag(f.prior.precision);
  auto C = at::inverse(P);
  auto mu = C.mv(X1.t().mv(raw.y) / (sigma * sigma) + f.prior.precision * f.prior.mean);

  FitRequest r;
  r.data.fit = raw;
  r.model = "mlp:";
  r.method = "laplace:subset=all,hessian=full";
  r.dtype = torch::kFloat64;
  r.train.epochs = 400;
  r.train.batch_size = 40;
  r.train.lr = 0.05;
  r.train.prior = path;
  r.train.quiet = true;
  auto fitted = fit(r);
  EXPECT_EQ(fitted.info.at("prior_precision").get<std::string>(), "file:" + path);
  EXPECT_DOUBLE_EQ(fitted.likelihood.sigma, sigma);  // the noise learned with the prior
  auto* post = dynamic_cast<const LaplacePosterior*>(fitted.posterior.get());
  ASSERT_NE(post, nullptr);
  EXPECT_LT((post->theta() - mu).abs().max().item<double>(), 2e-3) << post->theta() << mu;
  EXPECT_TRUE(at::allclose(at::inverse(post->precision_dense()), C, 1e-6, 1e-9));  // prior kept (prior=auto)
  // The evidence with the prior's mean, at the exact mode.
  auto subset = ParamSubset::parse("all", *m);
  auto lik = Likelihood::parse("gaussian?sigma=0.5", raw);
  auto curv = compute_curvature(*m, lik, subset, mu, raw, Structure::Full, CurvatureKind::GGN);
  LaplacePosterior exact(mu, subset, curv, f.prior.precision, sigma, 1.0);
  exact.set_prior_mean(f.prior.mean);
  EXPECT_NEAR(exact.log_marginal_likelihood(), log_evidence(X1, raw.y, f.prior.mean, f.prior.precision, sigma), 1e-8);
  // The marginal variances in every structure are the diagonal of the inverse precision.
  for (auto s : {Structure::Diag, Structure::Kron, Structure::Full}) {
    auto c = compute_curvature(*m, lik, subset, mu, raw, s, CurvatureKind::GGN);
    LaplacePosterior post_s(mu, subset, c, f.prior.precision, sigma, 1.0);
    EXPECT_TRUE(at::allclose(post_s.marginal_variance(), at::inverse(post_s.precision_dense()).diagonal(), 1e-9, 1e-12));
  }
  auto lr = compute_lowrank_curvature(*m, lik, subset, mu, raw, CurvatureKind::GGN, 2, 8);
  LaplacePosterior post_lr(mu, subset, lr, f.prior.precision, sigma, 1.0);
  EXPECT_TRUE(at::allclose(post_lr.marginal_variance(), at::inverse(post_lr.precision_dense()).diagonal(), 1e-8, 1e-12));
}

TEST(LearnedPrior, TheGpRefusesAFileAndPacBayesCertifiesAgainstIt) {
  auto m = make_model("mlp:", {1}, 1);
  PriorFile f;
  f.prior = GaussianPrior::isotropic(1.0, *m);
  auto path = temp_path("refused.crd");
  save_prior_file(path, f, false);
  FitRequest r;
  r.data = load_data("synthetic:sine?n=32");
  r.model = "mlp:";
  r.train.prior = path;
  r.train.quiet = true;
  r.method = "gp";
  EXPECT_THROW(fit(r), InvalidArgument);
  r.method = "map";
  r.model = "mlp:4";
  EXPECT_THROW(fit(r), InvalidArgument);  // another model

  // PAC-Bayes takes a learned prior as its (data-free) prior: every row goes to the bound.
  auto moons_model = make_model("mlp:8", {2}, 2);
  PriorFile g;
  g.prior.precision = at::linspace(50.0, 400.0, moons_model->layout().size);
  g.prior.mean = moons_model->init_params(3) * 0.5;
  g.model = "mlp:8";
  auto learned = temp_path("pacbayes.crd");
  save_prior_file(learned, g, false);
  FitRequest c;
  c.data = load_data("synthetic:moons?n=64");
  c.model = "mlp:8";
  c.method = "pacbayes";
  c.train.epochs = 2;
  c.train.batch_size = 32;
  c.train.quiet = true;
  c.train.prior = learned;
  auto fitted = fit(c);
  EXPECT_EQ(fitted.info.at("report").at("prior").get<std::string>(), "given");
  EXPECT_EQ(fitted.info.at("report").at("prior_rows").get<int64_t>(), 0);
  EXPECT_EQ(fitted.info.at("report").at("bound_rows").get<int64_t>(), 64);
  const auto& post = dynamic_cast<const CertifiedGaussianPosterior&>(*fitted.posterior);
  ASSERT_TRUE(post.prior_variance().defined());
  EXPECT_TRUE(at::allclose(post.prior_variance(), g.prior.precision.reciprocal().to(at::kFloat)));
  EXPECT_TRUE(at::allclose(post.prior_mean(), g.prior.mean.to(at::kFloat)));
  // The KL by hand, for the diagonal prior.
  auto v = post.variance().to(at::kDouble), d = post.mean().to(at::kDouble) - g.prior.mean;
  auto s2 = g.prior.precision.reciprocal();
  const double kl = 0.5 * (v / s2 + d * d / s2 - 1 - at::log(v / s2)).sum().item<double>();
  EXPECT_NEAR(post.kl(), kl, 1e-6 * std::max(1.0, kl));
  auto saved = temp_path("certified.crd");
  fitted.save(saved, false);
  auto loaded = FittedModel::load(saved);
  const auto& back = dynamic_cast<const CertifiedGaussianPosterior&>(*loaded.posterior);
  ASSERT_TRUE(back.prior_variance().defined());
  EXPECT_DOUBLE_EQ(back.kl(), post.kl());
  c.method = "pacbayes:prior=given";
  c.train.prior = "auto";
  EXPECT_THROW(fit(c), InvalidArgument);  // given, but no learned prior
}

// Tasks w_t ~ N(mu, diag(s^2)), y = X w_t + noise: meta-fit recovers mu, s^2 and the noise.
TEST(MetaFit, RecoversTheGaussianPriorTheTasksWereDrawnFrom) {
  const int64_t T = 200, n = 12;
  const double sigma = 0.3, s_w = 0.5, s_b = 0.8;
  auto mu = at::tensor({1.0, -2.0, 0.5}, at::kDouble);  // [W (2), b]
  auto gen = cpu_generator(7);
  MetaFitRequest r;
  for (int64_t t = 0; t < T; ++t) {
    auto w = mu + at::tensor({s_w, s_w, s_b}, at::kDouble) * at::randn({3}, gen, at::kDouble);
    Dataset d;
    d.x = at::randn({n, 2}, gen, at::kDouble);
    d.y = d.x.mv(w.narrow(0, 0, 2)) + w[2] + sigma * at::randn({n}, gen, at::kDouble);
    d.name = "task";
    r.tasks.tasks.push_back(d);
  }
  r.tasks.name = "linear tasks";
  r.model = "mlp:";
  r.hessian = "full";
  r.standardize = false;
  r.rounds = 60;
  r.steps = 20;
  auto result = meta_fit(r);
  const auto& prior = result.prior.prior;
  // Sampling error of a mean over T tasks: sqrt((s^2 + posterior variance) / T) ~ 0.04-0.06.
  EXPECT_LT((prior.mean - mu).abs().max().item<double>(), 0.2) << prior.mean;
  auto var = prior.precision.reciprocal();
  EXPECT_NEAR(var[0].item<double>(), s_w * s_w, 0.3 * s_w * s_w) << var;
  EXPECT_NEAR(var[2].item<double>(), s_b * s_b, 0.3 * s_b * s_b) << var;
  EXPECT_NEAR(result.sigma, sigma, 0.03);
  EXPECT_FALSE(result.prior.has_units);
  // EM never lowers the evidence.
  for (size_t i = 1; i < result.log_evidence.size(); ++i)
    EXPECT_GE(result.log_evidence[i], result.log_evidence[i - 1] - 1e-6) << "round " << i;
}

// With one task, a zero mean and one shared precision, meta-fit is type-II maximum likelihood:
// its precision maximizes the exact evidence log N(y; 0, s^2 I + X1 X1^T / p).
TEST(MetaFit, OneTaskIsTypeTwoMaximumLikelihood) {
  auto raw = load_data("synthetic:linear?n=30&d=3&noise=0.5&seed=9", {torch::kFloat64}).fit;
  MetaFitRequest r;
  r.tasks.tasks = {raw};
  r.tasks.name = "one task";
  r.model = "mlp:";
  r.likelihood = "gaussian?sigma=0.5";
  r.hessian = "full";
  r.learn_mean = false;
  r.variance = "shared";
  r.standardize = false;
  r.rounds = 400;
  r.steps = 20;
  auto result = meta_fit(r);
  const double learned = result.prior.prior.precision[0].item<double>();
  auto X1 = at::cat({raw.x, at::ones({raw.size(), 1}, at::kDouble)}, 1);
  auto zero = at::zeros({4}, at::kDouble);
  auto evidence = [&](double p) { return log_evidence(X1, raw.y, zero, at::full({4}, p, at::kDouble), 0.5); };
  // Golden-section search on log p.
  double a = std::log(1e-4), b = std::log(1e4);
  const double g = (std::sqrt(5.0) - 1) / 2;
  for (int i = 0; i < 200; ++i) {
    double c = b - g * (b - a), d = a + g * (b - a);
    if (evidence(std::exp(c)) > evidence(std::exp(d))) b = d;
    else a = c;
  }
  const double best = std::exp(0.5 * (a + b));
  EXPECT_NEAR(std::log(learned), std::log(best), 1e-3) << learned << " vs " << best;
  EXPECT_NEAR(result.log_evidence.back(), evidence(best), 1e-6);
}

TEST(MetaFit, RefusesBadRequests) {
  MetaFitRequest r;
  r.tasks.name = "none";
  EXPECT_THROW(meta_fit(r), InvalidArgument);
  r.tasks = load_tasks("synthetic:sinusoid?tasks=2&points=4");
  r.variance = "layer";
  EXPECT_THROW(meta_fit(r), InvalidArgument);
  r.variance = "tensor";
  r.hessian = "blocks";
  EXPECT_THROW(meta_fit(r), InvalidArgument);
}

}  // namespace credence
