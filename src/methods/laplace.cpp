#include "credence/methods/laplace.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <torch/optim/lbfgs.h>

#include <cmath>

#include "credence/core/error.h"
#include "credence/core/spec.h"
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
  torch::Tensor prior = log_prior.exp();
  if (per_layer) {
    std::vector<torch::Tensor> parts;
    for (int64_t i = 0; i < layers; ++i) {
      const auto& l = post.subset().layers[i];
      parts.push_back(prior[i].expand({l.out * (l.in + 1)}));
    }
    prior = at::cat(parts);
  }
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

  void init(const Problem& problem) override {
    if (!problem.map) throw InvalidArgument("laplace needs a MAP fit to start from");
    auto* particles = dynamic_cast<const ParticlePosterior*>(problem.map->posterior.get());
    if (!particles || particles->particles().size(0) != 1)
      throw InvalidArgument("laplace starts from a single MAP point; fit method 'map' first");
    likelihood_ = problem.map->likelihood;
    const auto& model = *problem.model;
    auto theta = particles->particles()[0];
    auto subset = ParamSubset::parse(options_.get_string("subset"), model);
    auto curvature = compute_curvature(model, likelihood_, subset, theta, problem.train,
                                       parse_structure(options_.get_string("hessian")),
                                       parse_curvature_kind(options_.get_string("curvature")));
    const std::string prior = options_.get_string("prior");
    torch::Tensor prior_precision = subset.gather(problem.prior.precision);
    if (prior.rfind("fixed:", 0) == 0)
      prior_precision = at::full({1}, parse_double(prior.substr(6), "laplace prior"), theta.options());
    else if (prior != "fixed" && prior != "marglik" && prior != "marglik:layerwise")
      throw InvalidArgument(fmt::format(
          "laplace: prior '{}' unknown (known: marglik, marglik:layerwise, fixed (the MAP's), fixed:VALUE)", prior));
    posterior_ = std::make_shared<LaplacePosterior>(theta, subset, std::move(curvature), prior_precision,
                                                    likelihood_.sigma, options_.get_double("temperature"));
    if (prior.rfind("marglik", 0) == 0) {
      const bool tune_sigma = likelihood_.kind == LikelihoodKind::Gaussian && likelihood_.learn_sigma;
      optimize_marglik(*posterior_, prior == "marglik:layerwise", tune_sigma);
      likelihood_.sigma = posterior_->sigma();
    }
    posterior_->predictive_type =
        options_.get_string("predictive") == "glm" ? LaplacePredictive::GLM : LaplacePredictive::NN;
    posterior_->link = options_.get_string("link") == "probit" ? GlmLink::Probit : GlmLink::MC;
  }

  std::shared_ptr<Posterior> finalize() override { return posterior_; }
  Likelihood fitted_likelihood() const override { return likelihood_; }

 private:
  Options options_;
  Likelihood likelihood_;
  std::shared_ptr<LaplacePosterior> posterior_;
};

}  // namespace

MethodInfo laplace_method_info() {
  MethodInfo info;
  info.name = "laplace";
  info.summary = "Laplace approximation around the MAP (curvature-based Gaussian), post-hoc";
  info.post_hoc = true;
  info.fields = {
      {"subset", FieldType::String, "last_layer", "random parameters: all, last_layer, names:PATTERN", {}},
      {"hessian", FieldType::Choice, "kron", "structure: diag, kron (KFAC), full", {"diag", "kron", "full"}},
      {"curvature", FieldType::Choice, "ggn", "ggn (generalized Gauss-Newton) or ef (empirical Fisher)",
       {"ggn", "ef"}},
      {"prior", FieldType::String, "marglik",
       "marglik (tune prior precision, and Gaussian noise, by marginal likelihood), marglik:layerwise, "
       "fixed (the MAP's prior), fixed:VALUE",
       {}},
      {"predictive", FieldType::Choice, "glm", "glm (linearized network) or nn (sample weights)", {"glm", "nn"}},
      {"link", FieldType::Choice, "probit", "classification GLM predictive: probit or mc", {"probit", "mc"}},
      {"temperature", FieldType::Double, "1", "posterior temperature (curvature divided by it)", {}}};
  info.make = [](const Options& o) { return std::make_unique<LaplaceMethod>(o); };
  return info;
}

}  // namespace credence
