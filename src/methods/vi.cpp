#include "credence/methods/vi.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <torch/optim/adam.h>

#include <cmath>

#include "credence/core/error.h"
#include "credence/core/rng.h"
#include "credence/core/spec.h"
#include "credence/model/subset.h"
#include "credence/model/subspace.h"
#include "credence/posterior/lowrank_gaussian.h"

namespace credence {

namespace {
// 0.5 * (sum prior_precision * (diag(C) + mean^2) - K - sum log prior_precision - log det C).
torch::Tensor kl_from(const torch::Tensor& mean, const torch::Tensor& cov_diag, const torch::Tensor& logdet,
                      const torch::Tensor& prior_precision) {
  return 0.5 * ((prior_precision * (cov_diag + mean * mean)).sum() - mean.size(-1) -
                at::log(prior_precision).sum() - logdet);
}
}  // namespace

torch::Tensor kl_diag_gaussian(const torch::Tensor& mean, const torch::Tensor& sd,
                               const torch::Tensor& prior_precision) {
  return kl_from(mean, sd * sd, 2.0 * at::log(sd).sum(), prior_precision);
}

torch::Tensor kl_lowrank_gaussian(const torch::Tensor& mean, const torch::Tensor& sd,
                                  const torch::Tensor& factor, const torch::Tensor& prior_precision) {
  // det(D + U U^T) = det(D) det(I_R + U^T D^-1 U): only an R x R Cholesky.
  auto var = sd * sd;
  auto small = at::eye(factor.size(1), factor.options()) + factor.t().mm(factor / var.unsqueeze(1));
  auto logdet = at::log(var).sum() + 2.0 * at::log(at::linalg_cholesky(small).diagonal()).sum();
  return kl_from(mean, var + factor.pow(2).sum(1), logdet, prior_precision);
}

torch::Tensor kl_full_gaussian(const torch::Tensor& mean, const torch::Tensor& chol,
                               const torch::Tensor& prior_precision) {
  return kl_from(mean, chol.pow(2).sum(1), 2.0 * at::log(chol.diagonal()).sum(), prior_precision);
}

namespace {

enum class Family { Diag, LowRank, Full, Mixture };
struct FamilyChoice {
  Family family = Family::Diag;
  int64_t k = 1;  ///< rank (lowrank) or components (mixture)
};

FamilyChoice parse_family(const std::string& text) {
  if (text == "diag") return {Family::Diag, 1};
  if (text == "full") return {Family::Full, 1};
  for (auto [prefix, family] :
       {std::pair{"lowrank:", Family::LowRank}, std::pair{"mixture:", Family::Mixture}}) {
    const std::string p = prefix;
    if (text.rfind(p, 0) != 0) continue;
    const long k = parse_int(text.substr(p.size()), "vi family=" + p + "K");
    if (k < 1) throw InvalidArgument(fmt::format("vi: family={} needs K >= 1", text));
    return {family, k};
  }
  throw InvalidArgument(
      fmt::format("vi: unknown family '{}' (known: diag, lowrank:K, full, mixture:K)", text));
}

// A dense Cholesky factor beyond this size costs more than its benefit (K^2 parameters).
constexpr int64_t kMaxFullSize = 2000;
// Weight samples per forward pass when estimating the final ELBO.
constexpr int64_t kElboChunk = 32;

class ViMethod : public Method {
 public:
  explicit ViMethod(const Options& o)
      : options_(o),
        family_(parse_family(o.get_string("family"))),
        samples_(o.get_int("samples")),
        temperature_(o.get_double("temperature")) {}

  bool data_parallel() const override { return true; }

  void init(const Problem& problem) override {
    problem_ = &problem;
    const auto& model = *problem.model;
    seed_ = problem.train_options.seed;
    const bool from_map = options_.get_string("init") == "map";
    // The mean starts where MAP starts, or at the MAP fit itself.
    auto theta0 = from_map ? map_params(problem, "vi") : model.init_params(seed_);
    const std::string subset_spec = options_.get_string("subset");
    if (subset_spec != "all") {
      subset_ = ParamSubset::parse(subset_spec, model);
      has_subset_ = true;
      // The rest are point estimates under their prior (MAP), trained jointly.
      point_precision_ = problem.prior.precision.clone().index_fill_(0, subset_.index, 0.0);
      state_["point"] = theta0.clone().requires_grad_(true);
    }
    prior_precision_ = gather(problem.prior.precision);
    // The prior's mean over the random parameters, and over the point estimates (zero: unset).
    if (problem.prior.has_mean()) {
      prior_mean_ = gather(problem.prior.mean);
      point_mean_ = problem.prior.mean;
    }
    const int64_t K = prior_precision_.size(0);
    check_size(K);
    const std::string estimator = options_.get_string("estimator");
    const bool per_example = family_.family == Family::Diag && !has_subset_ && model.find<GaussianForward>();
    if (estimator == "local" && !per_example) {
      if (family_.family == Family::Diag && !has_subset_) model.require<GaussianForward>("vi:estimator=local");
      throw InvalidArgument("vi: estimator=local needs family=diag and subset=all; use estimator=weight");
    }
    local_ = estimator == "local" || (estimator == "auto" && per_example);
    if (problem.function_prior) {
      if (family_.family != Family::Diag || has_subset_)
        throw InvalidArgument("vi: a prior over functions (--prior gp:...) needs family=diag and subset=all");
      function_prior_ = &*problem.function_prior;
    }

    const int64_t C = family_.family == Family::Mixture ? family_.k : 1;
    std::vector<torch::Tensor> means;
    for (int64_t c = 0; c < C; ++c)  // mixture components start apart, as ensemble members do
      means.push_back(gather(c == 0 ? theta0 : model.init_params(rng_key(seed_, Stream::Init, 1, c))));
    const double init_std = options_.get_double("init_std");
    const auto opts = theta0.options();
    state_["mean"] = at::stack(means).requires_grad_(true);
    state_["rho"] = at::full({C, K}, std::log(std::expm1(init_std)), opts).requires_grad_(true);
    if (family_.family == Family::LowRank)  // random: U = 0 is a stationary point of the ELBO
      state_["factor"] = (keyed_randn({K, family_.k}, rng_key(seed_, Stream::Init, 5), opts) *
                          (init_std / std::sqrt(static_cast<double>(family_.k))))
                             .requires_grad_(true);
    if (family_.family == Family::Full) state_["factor"] = at::zeros({K, K}, opts).requires_grad_(true);
    const auto& lik = problem.likelihood;
    if (lik.kind == LikelihoodKind::Gaussian && lik.learn_sigma) {
      const double sigma = from_map ? problem.map->likelihood.sigma : lik.sigma;
      state_["log_sigma"] = at::full({}, std::log(sigma), opts).requires_grad_(true);
    }

    std::vector<torch::Tensor> params;
    for (auto& [name, t] : state_) params.push_back(t);
    optimizer_ =
        std::make_unique<torch::optim::Adam>(params, torch::optim::AdamOptions(problem.train_options.lr));
  }

  StepInfo step(const Batch& batch) override {
    const auto& p = *problem_;
    optimizer_->zero_grad();
    const uint64_t key = rng_key(seed_, Stream::Noise, batch.step);
    torch::Tensor theta, out;
    if (local_) {  // each example (and sample) gets its own weights, through the pre-activations
      auto x = samples_ == 1 ? batch.x : at::cat(std::vector<torch::Tensor>(samples_, batch.x));
      // Noise by position in the batch: keyed by the shard's offset too, so ranks draw independently.
      out = p.model->require<GaussianForward>("vi:estimator=local").forward_gaussian(x, state_["mean"][0], at::softplus(state_["rho"][0]),
                                      rng_key(seed_, Stream::Noise, batch.step, batch.offset))
                .view({samples_, batch.x.size(0), -1});
    } else {
      theta = draw(samples_, key);
      auto thetas = full(theta);
      out = thetas.size(0) == 1 ? p.model->forward(batch.x, thetas[0]).unsqueeze(0)
                                : p.model->forward(batch.x, thetas);
    }
    // Per example: E_q[batch NLL] / B + T (KL + point parameters' prior) / N.
    auto nll = p.likelihood.nll_stacked(out, batch.y, log_sigma()).mean() / batch.x.size(0);
    auto penalty = function_prior_ ? function_kl(batch.step) : divergence(theta);
    if (has_subset_) penalty = penalty + 0.5 * (point_precision_ * centered(state_["point"], point_mean_).pow(2)).sum();
    auto loss = nll + penalty * (temperature_ / static_cast<double>(p.train.size()));
    loss.backward();
    reduce_gradients(p, batch, state_);
    optimizer_->step();
    return {loss.item<double>()};
  }

  std::shared_ptr<Posterior> finalize() override {
    at::NoGradGuard no_grad;
    estimate_elbo();
    report_["estimator"] = local_ ? "local" : "weight";
    if (function_prior_) report_["prior"] = function_prior_->spec;
    auto means = full(state_["mean"]);
    auto sd = at::softplus(state_["rho"]);
    auto variances = has_subset_ ? subset_.scatter(at::zeros_like(state_["point"]), sd * sd) : sd * sd;
    auto index = has_subset_ ? subset_.index : torch::Tensor();
    switch (family_.family) {
      case Family::Diag:
        return std::make_shared<GaussianPosterior>(means[0], variances[0]);
      case Family::LowRank:
        return std::make_shared<LowRankGaussianPosterior>(means[0], variances[0], state_["factor"], index);
      case Family::Full:
        return std::make_shared<LowRankGaussianPosterior>(means[0], at::zeros_like(means[0]), chol(), index);
      case Family::Mixture:
        return std::make_shared<MixturePosterior>(
            means, variances, at::full({means.size(0)}, 1.0 / means.size(0), means.options()));
    }
    return {};
  }

  Likelihood fitted_likelihood() const override {
    Likelihood l = problem_->likelihood;
    auto it = state_.find("log_sigma");
    if (it != state_.end()) l.sigma = std::exp(it->second.item<double>());
    return l;
  }

  nlohmann::json report() const override { return report_; }

 private:
  void check_size(int64_t K) const {
    const std::string subset = options_.get_string("subset");
    if (family_.family == Family::Full && K > kMaxFullSize)
      throw InvalidArgument(fmt::format(
          "vi: family=full needs at most {} random parameters, but subset={} has {}; use subset=last_layer "
          "(or names:PATTERN) or family=lowrank:K",
          kMaxFullSize, subset, K));
    if (family_.family == Family::LowRank && family_.k > K)
      throw InvalidArgument(
          fmt::format("vi: family=lowrank:{} exceeds the {} parameters of subset={}; use K <= {}", family_.k,
                      K, subset, K));
  }

  static torch::Tensor centered(const torch::Tensor& theta, const torch::Tensor& mean) {
    return mean.defined() ? theta - mean : theta;
  }
  torch::Tensor gather(const torch::Tensor& theta) const {
    return has_subset_ ? subset_.gather(theta) : theta;
  }
  /// Subset values [S, K] -> full parameter vectors [S, P] (the point estimates elsewhere).
  torch::Tensor full(const torch::Tensor& values) const {
    return has_subset_ ? subset_.scatter(state_.at("point"), values) : values;
  }
  torch::Tensor log_sigma() const {
    auto it = state_.find("log_sigma");
    return it == state_.end() ? torch::Tensor() : it->second;
  }
  torch::Tensor chol() const {
    return at::tril(state_.at("factor"), -1) + at::diag(at::softplus(state_.at("rho")[0]));
  }

  /// Reparameterized draws [S', K] of the random parameters (S' = C * S for a mixture: S per
  /// component, so their mean is an unbiased expectation under the equal-weight mixture).
  torch::Tensor draw(int64_t S, uint64_t key) const {
    const auto& mean = state_.at("mean");
    auto sd = at::softplus(state_.at("rho"));
    const int64_t C = mean.size(0), K = mean.size(1);
    switch (family_.family) {
      case Family::Diag:
      case Family::Mixture: {
        auto z = keyed_randn({C, S, K}, key, mean.options());
        return (mean.unsqueeze(1) + sd.unsqueeze(1) * z).reshape({C * S, K});
      }
      case Family::LowRank: {
        const auto& factor = state_.at("factor");
        const int64_t R = factor.size(1);
        auto z = keyed_randn({S, K + R}, key, mean.options());
        return mean + sd * z.narrow(1, 0, K) + z.narrow(1, K, R).mm(factor.t());
      }
      case Family::Full:
        return mean + keyed_randn({S, K}, key, mean.options()).mm(chol().t());
    }
    return {};
  }

  /// The KL to a prior over functions at one step's context points (step -1: the ELBO's).
  torch::Tensor function_kl(int64_t step) const {
    const auto& p = *problem_;
    auto xc = function_prior_->context_points(p.train.x, rng_key(seed_, Stream::Sample, 7, step + 1));
    auto sd = at::softplus(state_.at("rho"))[0];
    return function_prior_->kl(*p.model, state_.at("mean")[0], sd * sd, xc);
  }

  /// KL(q || prior) over the random parameters: closed form for a Gaussian; for a mixture, the
  /// Monte-Carlo estimate mean(log q - log prior) at its draws `theta`.
  torch::Tensor divergence(const torch::Tensor& theta) const {
    const auto& mean = state_.at("mean");
    auto sd = at::softplus(state_.at("rho"));
    switch (family_.family) {
      case Family::Diag:
        return kl_diag_gaussian(centered(mean[0], prior_mean_), sd[0], prior_precision_);
      case Family::LowRank:
        return kl_lowrank_gaussian(centered(mean[0], prior_mean_), sd[0], state_.at("factor"), prior_precision_);
      case Family::Full:
        return kl_full_gaussian(centered(mean[0], prior_mean_), chol(), prior_precision_);
      case Family::Mixture:
        return log_ratio(theta).mean();
    }
    return {};
  }

  /// log q(theta) - log prior(theta) [S'] for the mixture at draws theta [S', K].
  torch::Tensor log_ratio(const torch::Tensor& theta) const {
    const auto& mean = state_.at("mean");
    auto sd = at::softplus(state_.at("rho"));
    const double half_log_2pi = 0.5 * std::log(2 * M_PI);
    auto z = (theta.unsqueeze(1) - mean.unsqueeze(0)) / sd.unsqueeze(0);  // [S', C, K]
    auto log_components = -0.5 * z.pow(2).sum(-1) - at::log(sd).sum(-1) - mean.size(1) * half_log_2pi;
    auto log_q = at::logsumexp(log_components, 1) - std::log(static_cast<double>(mean.size(0)));
    auto offset = centered(theta, prior_mean_);
    auto log_prior = -0.5 * (prior_precision_ * offset * offset).sum(-1) +
                     (0.5 * at::log(prior_precision_) - half_log_2pi).sum();
    return log_q - log_prior;
  }

  /// ELBO = E_q[log p(D | theta)] - KL on the whole training set (at T = 1), from `elbo_samples`
  /// draws, with its Monte-Carlo standard error; fixed parameters of a subset enter through their
  /// log prior density (a point has no KL), so with a subset it is not a bound.
  void estimate_elbo() {
    const int64_t S = options_.get_int("elbo_samples");
    if (S == 0) return;
    const auto& p = *problem_;
    auto theta = draw(S, rng_key(seed_, Stream::Sample, 1));
    std::vector<torch::Tensor> nlls;
    for (int64_t start = 0; start < theta.size(0); start += kElboChunk) {
      auto chunk = full(theta.narrow(0, start, std::min(kElboChunk, theta.size(0) - start)));
      nlls.push_back(p.likelihood.nll_stacked(stacked_outputs(*p.model, p.train.x, chunk, 1000), p.train.y,
                                              log_sigma()));
    }
    auto nll = at::cat(nlls);
    auto kl = family_.family == Family::Mixture ? log_ratio(theta)
              : function_prior_                 ? function_kl(-1).expand_as(nll)
                                                : divergence(theta).expand_as(nll);
    double point_log_prior = 0.0;
    if (has_subset_) {
      auto fixed = point_precision_ > 0;
      auto lam = point_precision_.masked_select(fixed),
           v = centered(state_["point"], point_mean_).masked_select(fixed);
      point_log_prior = (0.5 * at::log(lam / (2 * M_PI)) - 0.5 * lam * v * v).sum().item<double>();
    }
    auto terms = -nll - kl;
    const double count = static_cast<double>(terms.size(0));
    const double standard_error = count > 1 ? terms.std().item<double>() / std::sqrt(count) : NAN;
    report_ = {{"elbo", terms.mean().item<double>() + point_log_prior},
               {"elbo_stderr", standard_error},
               {"expected_nll", nll.mean().item<double>()},
               {"kl", kl.mean().item<double>()},
               {"elbo_samples", theta.size(0)}};
  }

  Options options_;
  FamilyChoice family_;
  int64_t samples_ = 1;
  double temperature_ = 1.0;
  const Problem* problem_ = nullptr;
  uint64_t seed_ = 0;
  bool has_subset_ = false;
  bool local_ = false;  ///< per-example weights (local reparameterization / Flipout)
  ParamSubset subset_;
  torch::Tensor prior_precision_, point_precision_, prior_mean_, point_mean_;
  const FunctionPrior* function_prior_ = nullptr;  ///< set for a prior over functions
  std::unique_ptr<torch::optim::Adam> optimizer_;
  nlohmann::json report_ = nlohmann::json::object();
};

}  // namespace

MethodInfo vi_method_info() {
  MethodInfo info;
  info.name = "vi";
  info.stops_early = true;
  info.takes_function_prior = true;
  info.summary = "Variational inference: a Gaussian or Gaussian mixture fitted by the reparameterized ELBO";
  info.fields = {
      {"family",
       FieldType::String,
       "diag",
       "diag (mean-field), lowrank:K (diagonal plus rank K), full (dense; at most 2000 random parameters), "
       "mixture:K (K diagonal Gaussians, equal weights)",
       {}},
      {"subset",
       FieldType::String,
       "all",
       "random parameters: all, last_layer, names:PATTERN (the others are trained as point estimates), or a subspace: pca:K, random:K",
       {}},
      {"estimator",
       FieldType::Choice,
       "auto",
       "gradient estimator: local (per-example weights: local reparameterization for linear layers, Flipout "
       "for convolutions; family=diag, subset=all, mlp/cnn), weight (one draw per step shared by the batch), "
       "auto (local where it applies)",
       {"auto", "local", "weight"}},
      {"init",
       FieldType::Choice,
       "random",
       "where the means start: random (MAP's initialization; mixture components apart) or map (a MAP fit of "
       "the same model, fitted first)",
       {"random", "map"}},
      {"samples", FieldType::Int, "1", "weight samples per step (per component for a mixture)", {}},
      {"temperature",
       FieldType::Double,
       "1",
       "T > 0: minimizes E[NLL] + T * KL; T < 1 is a cold posterior",
       {}},
      {"init_std",
       FieldType::Double,
       "0.01",
       "initial posterior standard deviation of every random parameter",
       {}},
      {"elbo_samples",
       FieldType::Int,
       "8",
       "draws for the ELBO reported after training (a pass over the training set each); 0 skips it",
       {}}};
  info.make = [](const Options& o) { return std::make_unique<ViMethod>(o); };
  info.uses_map = [](const Options& o) { return o.get_string("init") == "map"; };
  info.validate = [](const Options& o) {
    parse_family(o.get_string("family"));
    const std::string subset = o.get_string("subset");
    if (subset != "all" && subset != "last_layer" && subset.rfind("names:", 0) != 0 &&
        parse_subspace_spec(subset).first.empty())
      throw InvalidArgument(fmt::format(
          "vi: unknown subset '{}' (known: all, last_layer, names:PATTERN, pca:K, random:K)", subset));
    if (o.get_int("samples") < 1)
      throw InvalidArgument(fmt::format("vi: samples must be >= 1, got {}", o.get_int("samples")));
    if (!(o.get_double("temperature") > 0))
      throw InvalidArgument(fmt::format("vi: temperature must be > 0, got {} (1 is the Bayes posterior)",
                                        o.get_double("temperature")));
    if (!(o.get_double("init_std") > 0))
      throw InvalidArgument(fmt::format("vi: init_std must be > 0, got {}", o.get_double("init_std")));
    if (o.get_int("elbo_samples") < 0)
      throw InvalidArgument(
          fmt::format("vi: elbo_samples must be >= 0 (0 skips the ELBO), got {}", o.get_int("elbo_samples")));
  };
  return info;
}

}  // namespace credence
