#include "credence/methods/laplace.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <torch/optim/lbfgs.h>

#include <cmath>
#include <limits>

#include "credence/core/error.h"
#include "credence/core/progress.h"
#include "credence/core/spec.h"
#include "credence/eval/metrics.h"
#include "credence/core/rng.h"
#include "credence/posterior/functional_laplace.h"
#include "credence/posterior/laplace.h"

namespace credence {

void optimize_marglik(LaplacePosterior& post, bool per_layer, bool tune_sigma) {
  auto opts = post.theta().options();
  const int64_t layers = static_cast<int64_t>(post.subset().layers.size());
  auto log_prior = at::zeros({per_layer ? layers : 1}, opts).requires_grad_(true);
  auto log_sigma = at::full({}, std::log(post.sigma()), opts).requires_grad_(true);
  std::vector<torch::Tensor> params = {log_prior};
  if (tune_sigma) params.push_back(log_sigma);
  // L-BFGS converges to the maximizer in a few dozen evaluations of this cheap objective.
  torch::optim::LBFGS opt(params, torch::optim::LBFGSOptions(1.0).max_iter(500).tolerance_grad(1e-10)
                                      .tolerance_change(1e-14).line_search_fn("strong_wolfe"));
  opt.step([&] {
    opt.zero_grad();
    auto loss = -post.log_marginal_likelihood(log_prior, log_sigma);
    loss.backward();
    return loss;
  });
  at::NoGradGuard no_grad;
  torch::Tensor prior = post.subset().per_entry(log_prior.clamp(-30, 30).exp());
  double sigma = tune_sigma ? std::exp(log_sigma.item<double>()) : post.sigma();
  if (!std::isfinite(sigma) || !at::isfinite(prior).all().item<bool>())
    throw NumericalError("laplace: marginal-likelihood tuning diverged; use prior=fixed:VALUE");
  post.set_hyper(prior, sigma);
}

namespace {

class LaplaceMethod : public Method {
 public:
  explicit LaplaceMethod(const Options& o) : options_(o) {}

  bool wants_batches() const override { return false; }
  bool data_parallel() const override { return true; }  // curvature sums over rows split across ranks

  void init(const Problem& problem) override {
    if (!problem.map) throw InvalidArgument("laplace needs a MAP fit to start from");
    auto* particles = dynamic_cast<const ParticlePosterior*>(problem.map->posterior.get());
    if (!particles || particles->particles().size(0) != 1)
      throw InvalidArgument("laplace starts from a single MAP point; fit method 'map' first");
    likelihood_ = problem.map->likelihood;
    const auto& model = *problem.model;
    auto theta = particles->particles()[0];
    const std::string subset_spec = options_.get_string("subset");
    auto subset = subset_spec.rfind("subnetwork:", 0) == 0 ? choose_subnetwork(problem, theta, subset_spec)
                                                            : ParamSubset::parse(subset_spec, model);
    if (options_.get_string("hessian") == "gp") return init_functional(problem, theta, subset);
    int64_t rank = 0;
    auto structure = parse_structure(options_.get_string("hessian"), &rank);
    auto start = std::chrono::steady_clock::now();
    auto kind = parse_curvature_kind(options_.get_string("curvature"));
    auto curvature = structure == Structure::LowRank
                         ? compute_lowrank_curvature(model, likelihood_, subset, theta, problem.train, kind, rank,
                                                     options_.get_int("iterations"), 256, problem.train_options.seed)
                         : compute_curvature(model, likelihood_, subset, theta, problem.train, structure, kind, 256,
                                             problem.train_options.seed, problem.comm,
                                             parse_kfac_sharing(options_.get_string("kfac")));
    report_["curvature_seconds"] = seconds_since(start);  // the pass over the data
    start = std::chrono::steady_clock::now();
    std::string prior = options_.get_string("prior");
    const bool automatic = prior == "auto";
    // A learned prior (--prior FILE) is kept as it is; an isotropic one is tuned.
    if (automatic) prior = problem.prior.source.empty() ? "marglik" : "fixed";
    auto prior_precision = starting_prior_precision(problem, subset, prior, theta);
    if (prior == "val" && !problem.val)
      throw InvalidArgument("laplace: prior=val needs a validation part; add holdout=val:0.1 to --data");
    posterior_ = std::make_shared<LaplacePosterior>(theta, subset, std::move(curvature), prior_precision,
                                                    likelihood_.sigma, options_.get_double("temperature"));
    if (problem.prior.has_mean()) posterior_->set_prior_mean(subset.gather(problem.prior.mean));
    report_["map_seconds"] = problem.map->info.value("fit_seconds", 0.0);
    report_["factor_seconds"] = seconds_since(start);  // eigendecompositions or Cholesky factor
    start = std::chrono::steady_clock::now();
    if (prior.rfind("marglik", 0) == 0) {
      const bool tune_sigma = likelihood_.kind == LikelihoodKind::Gaussian && likelihood_.learn_sigma;
      const double map_sigma = likelihood_.sigma;
      optimize_marglik(*posterior_, prior == "marglik:layerwise", tune_sigma);
      if (automatic && problem.val) keep_the_better_prior(problem, prior_precision, map_sigma);
      likelihood_.sigma = posterior_->sigma();
    }
    posterior_->predictive_type =
        options_.get_string("predictive") == "glm" ? LaplacePredictive::GLM : LaplacePredictive::NN;
    posterior_->link = parse_glm_link(options_.get_string("link"));
    if (prior == "val") tune_on_validation(problem);
    if (prior == "val" || prior.rfind("marglik", 0) == 0)
      report_[prior == "val" ? "val_seconds" : "marglik_seconds"] = seconds_since(start);
    // The prior precision as one number: the mean over layers for a per-layer prior.
    report_["prior_precision"] = posterior_->prior_precision().mean().item<double>();
    if (likelihood_.kind == LikelihoodKind::Gaussian) report_["sigma"] = posterior_->sigma();
  }
  nlohmann::json report() const override { return report_; }

  std::shared_ptr<Posterior> finalize() override {
    if (functional_) return functional_;
    return posterior_;
  }

  // The fit's prior precision over the subset, or prior=fixed:VALUE's.
  static torch::Tensor starting_prior_precision(const Problem& problem, const ParamSubset& subset,
                                                const std::string& prior, const torch::Tensor& theta) {
    if (prior.rfind("fixed:", 0) == 0)
      return at::full({1}, parse_double(prior.substr(6), "laplace prior"), theta.options());
    return subset.gather(problem.prior.precision);
  }

  // hessian=gp: the linearized network as a GP on M inducing rows, under the fit's prior.
  void init_functional(const Problem& problem, const torch::Tensor& theta, const ParamSubset& subset) {
    const std::string prior = options_.get_string("prior");
    if (prior != "auto" && prior != "fixed" && prior.rfind("fixed:", 0) != 0)
      throw InvalidArgument(fmt::format("laplace: hessian=gp takes prior=fixed or fixed:VALUE, not '{}'", prior));
    if (options_.get_string("predictive") != "glm")
      throw InvalidArgument("laplace: hessian=gp is a posterior over functions: its predictive is glm");
    auto start = std::chrono::steady_clock::now();
    const auto& data = problem.train;
    const int64_t n = data.size(), asked = options_.get_int("points");
    const int64_t M = asked <= 0 ? n : std::min(asked, n);
    auto rows = std::get<0>(keyed_permutation(n, rng_key(problem.train_options.seed, Stream::Sample, 9))
                                .narrow(0, 0, M).sort()).to(data.x.device());
    auto z = data.x.index_select(0, rows);
    auto y = data.y.index_select(0, rows);
    torch::Tensor f;
    {
      at::NoGradGuard no_grad;
      f = problem.model->forward(z, theta, nullptr);
    }
    Likelihood unit = likelihood_;
    unit.sigma = 1.0;
    // The inducing rows stand for all N, and the curvature is at unit noise for a Gaussian.
    double scale = std::sqrt(static_cast<double>(n) / M / options_.get_double("temperature"));
    if (likelihood_.kind == LikelihoodKind::Gaussian) scale /= likelihood_.sigma;
    auto factors = output_factors(unit, f, y, CurvatureKind::GGN) * scale;
    functional_ = std::make_shared<FunctionalLaplacePosterior>(*problem.model, theta, subset,
                                                               starting_prior_precision(problem, subset, prior, theta),
                                                               z, factors, likelihood_.sigma);
    functional_->link = parse_glm_link(options_.get_string("link"));
    report_["map_seconds"] = problem.map->info.value("fit_seconds", 0.0);
    report_["inducing_points"] = M;
    report_["factor_seconds"] = seconds_since(start);
  }

  // The K weights whose posterior variance (diagonal GGN Laplace) falls most below their prior
  // variance: weights that the data inform, unlike raw posterior variance, which favours dead ones.
  ParamSubset choose_subnetwork(const Problem& problem, const torch::Tensor& theta, const std::string& spec) const {
    const auto& model = *problem.model;
    long k = parse_int(spec.substr(11), "laplace subset=subnetwork:K");
    auto all = ParamSubset::parse("all", model);
    if (k < 1 || k > all.size)
      throw InvalidArgument(fmt::format("laplace: subnetwork:{} must pick between 1 and {} weights", k, all.size));
    auto diag = compute_curvature(model, likelihood_, all, theta, problem.train, Structure::Diag, CurvatureKind::GGN);
    auto h = diag.diag / std::pow(likelihood_.sigma, diag.noise_power);
    auto delta = all.gather(problem.prior.precision);
    auto reduction = delta.reciprocal() - (h + delta).reciprocal();
    auto top = std::get<1>(reduction.topk(k));
    return ParamSubset::from_index(spec, model, all.index.index_select(0, top));
  }

  // The posterior's predictive NLL on the validation part (standardized units: argmins are the
  // same as in original units).
  double validation_nll(const Problem& problem) const {
    const auto& val = *problem.val;
    Likelihood likelihood = likelihood_;
    likelihood.sigma = posterior_->sigma();
    auto p = posterior_->predict(*problem.model, likelihood, val.x, 0.0, 1.0, {});
    return nll(p, val.y);
  }

  // The evidence can favour a prior that predicts worse than the MAP's own: with a validation
  // part, prior=auto keeps whichever of the two predicts it better and reports both.
  void keep_the_better_prior(const Problem& problem, const torch::Tensor& map_precision, double map_sigma) {
    auto evidence_precision = posterior_->prior_precision().clone();
    const double evidence_sigma = posterior_->sigma(), evidence_nll = validation_nll(problem);
    posterior_->set_hyper(map_precision, map_sigma);
    const double map_prior_nll = validation_nll(problem);
    const bool evidence = evidence_nll <= map_prior_nll;
    if (evidence) posterior_->set_hyper(evidence_precision, evidence_sigma);
    report_["prior_choice"] = {{"chosen", evidence ? "marglik" : "fixed"},
                               {"val_nll_marglik", evidence_nll},
                               {"val_nll_fixed", map_prior_nll}};
  }

  // Picks the prior precision on a log grid by the predictive NLL on the validation part.
  void tune_on_validation(const Problem& problem) {
    double best_nll = std::numeric_limits<double>::infinity(), best = 1.0;
    for (int i = -4 * 4; i <= 4 * 4; ++i) {
      double delta = std::pow(10.0, i / 4.0);
      posterior_->set_hyper(at::full({1}, delta, posterior_->theta().options()), posterior_->sigma());
      double nll = validation_nll(problem);
      if (nll < best_nll) best_nll = nll, best = delta;
    }
    posterior_->set_hyper(at::full({1}, best, posterior_->theta().options()), posterior_->sigma());
  }
  Likelihood fitted_likelihood() const override { return likelihood_; }

 private:
  Options options_;
  Likelihood likelihood_;
  std::shared_ptr<LaplacePosterior> posterior_;
  std::shared_ptr<FunctionalLaplacePosterior> functional_;
  nlohmann::json report_ = nlohmann::json::object();
};

}  // namespace

MethodInfo laplace_method_info() {
  MethodInfo info;
  info.name = "laplace";
  // Under --tune the evidence and the validation part each propose a prior; the better one stays.
  info.tune_space = {{"prior", {"auto", "val"}}};
  info.summary = "Laplace approximation around the MAP (curvature-based Gaussian), post-hoc";
  info.post_hoc = true;
  info.fields = {
      {"subset", FieldType::String, "last_layer",
       "random parameters: all, last_layer, names:PATTERN, subnetwork:K (the K weights the data inform most)", {}},
      {"hessian", FieldType::String, "kron",
       "structure: diag, kron (KFAC), full, lowrank:K (top-K eigenpairs of the exact curvature plus the prior), or "
       "gp (the linearized network as a GP with its tangent kernel on `points` inducing rows)",
       {}},
      {"points", FieldType::Int, "0", "hessian=gp: inducing rows drawn from the training data (0: all of them)", {}},
      {"iterations", FieldType::Int, "4", "lowrank: subspace-iteration passes over the data", {}},
      {"kfac", FieldType::Choice, "expand",
       "kron over weights shared by positions (convolutions, token-wise layers): expand (each position an "
       "example) or reduce (sum over positions first)",
       {"expand", "reduce"}},
      {"curvature", FieldType::Choice, "ggn",
       "ggn (exact generalized Gauss-Newton), ef (empirical Fisher), mc (Monte-Carlo Fisher: one sampled target)",
       {"ggn", "ef", "mc"}},
      {"prior", FieldType::String, "auto",
       "auto (marglik, or fixed for a learned --prior file), marglik (tune prior precision, and Gaussian noise, "
       "by marginal likelihood), marglik:layerwise, val (grid search on the validation part by NLL), fixed "
       "(the MAP's prior), fixed:VALUE",
       {}},
      {"predictive", FieldType::Choice, "glm", "glm (linearized network) or nn (sample weights)", {"glm", "nn"}},
      {"link", FieldType::Choice, "probit",
       "classification GLM predictive: probit, bridge (Laplace bridge to a Dirichlet) or mc", {"probit", "bridge", "mc"}},
      {"temperature", FieldType::Double, "1", "posterior temperature (curvature divided by it)", {}}};
  info.make = [](const Options& o) { return std::make_unique<LaplaceMethod>(o); };
  info.validate = [](const Options& o) {
    if (o.get_string("hessian") != "gp") parse_structure(o.get_string("hessian"));
    if (o.get_int("points") < 0) throw InvalidArgument("laplace: points must be >= 0 (0: every training row)");
    const std::string subset = o.get_string("subset"), prior = o.get_string("prior");
    if (subset != "all" && subset != "last_layer" && subset.rfind("names:", 0) != 0 &&
        subset.rfind("subnetwork:", 0) != 0)
      throw InvalidArgument(
          fmt::format("laplace: unknown subset '{}' (known: all, last_layer, names:PATTERN, subnetwork:K)", subset));
    if (subset.rfind("subnetwork:", 0) == 0) parse_int(subset.substr(11), "laplace subset=subnetwork:K");
    if (prior.rfind("fixed:", 0) == 0) parse_double(prior.substr(6), "laplace prior=fixed:VALUE");
    else if (prior != "auto" && prior != "fixed" && prior != "marglik" && prior != "marglik:layerwise" && prior != "val")
      throw InvalidArgument(fmt::format(
          "laplace: prior '{}' unknown (known: auto, marglik, marglik:layerwise, val, fixed (the MAP's), fixed:VALUE)",
          prior));
    if (!(o.get_double("temperature") > 0)) throw InvalidArgument("laplace: temperature must be > 0");
    if (o.get_int("iterations") < 0) throw InvalidArgument("laplace: iterations must be >= 0");
  };
  return info;
}

}  // namespace credence
