#include "credence/methods/ivon.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "credence/core/error.h"
#include "credence/core/rng.h"
#include "credence/core/spec.h"
#include "credence/methods/sgmcmc.h"
#include "bucketed_reduction.h"
#include "ivon_update.h"

namespace credence {
namespace {

// As in sgmcmc: a learned Gaussian noise follows the running mean squared residual, a plain mean
// over the first 1 / kSigmaRate steps, then an exponential average with this rate.
constexpr double kSigmaRate = 0.01;

// hess_init=auto: the first steps are SGD steps of lr / h0 and the first variances 1 / (N h0), so
// h0 should follow the likelihood's curvature in the network's output. A Gaussian's is 1 / sigma^2
// (targets are standardized, so about 1 with a learned noise); a softmax's, p (1 - p), is at most
// 1/4 and falls as the fit sharpens, hence a tenth of it.
double initial_hessian(const std::string& text, const Likelihood& likelihood) {
  if (text != "auto") return parse_double(text, "ivon.hess_init");
  switch (likelihood.kind) {
    case LikelihoodKind::Gaussian:
      return 1.0 / (likelihood.sigma * likelihood.sigma);
    case LikelihoodKind::Heteroscedastic:
      return 1.0;
    default:
      return 0.1;
  }
}

// State: the posterior mean m, the Hessian estimate h and the gradient momentum g, all [P]. The
// posterior is N(m, 1 / (ess (h + delta))) with delta = prior precision / N, the weight decay.
class IvonMethod : public Method {
 public:
  explicit IvonMethod(const Options& o)
      : hess_init_text_(o.get_string("hess_init")),
        beta1_(o.get_double("beta1")),
        beta2_(o.get_double("beta2")),
        ess_(o.get_double("ess")),
        clip_(o.get_double("clip")),
        mc_samples_(o.get_int("mc_samples")),
        cosine_(o.get_string("schedule") == "cosine") {}

  bool data_parallel() const override { return true; }

  void init(const Problem& problem) override {
    problem_ = &problem;
    n_ = problem.train.size();
    lambda_ = ess_ > 0 ? ess_ : static_cast<double>(n_);
    lr_ = problem.train_options.lr;
    seed_ = problem.train_options.seed;
    const int64_t bs = std::min(problem.train_options.batch_size, n_);
    total_steps_ = std::max<int64_t>(1, problem.train_options.epochs * ((n_ + bs - 1) / bs));
    hess_init_ = initial_hessian(hess_init_text_, problem.likelihood);
    auto mean = problem.model->init_params(seed_);  // where MAP starts
    state_["mean"] = mean;
    state_["hess"] = at::full_like(mean, hess_init_);
    state_["momentum"] = at::zeros_like(mean);
    delta_ = problem.prior.precision.to(mean.options()) / static_cast<double>(n_);
    if (problem.prior.has_mean()) prior_mean_ = problem.prior.mean.to(mean.options());
    const auto& lik = problem.likelihood;
    if (lik.kind == LikelihoodKind::Gaussian && lik.learn_sigma)
      state_["log_sigma"] = at::full({}, std::log(lik.sigma), mean.options());
  }

  StepInfo step(const Batch& batch) override {
    const auto& p = *problem_;
    auto& m = state_["mean"];
    auto& h = state_["hess"];
    auto& g = state_["momentum"];
    const int64_t P = m.size(0);
    const bool fused = ivon::can_fuse(m);
    if (!theta_.defined()) {  // buffers reused across steps: fresh memory is slow to touch
      eps_ = at::empty({mc_samples_, P}, m.options().device(torch::kCPU));
      sigma_ = at::empty_like(m);
      theta_ = at::empty({mc_samples_, P}, m.options()).requires_grad_(true);
    }
    {
      at::NoGradGuard no_grad;
      // Keyed by step, so a data-parallel run draws the same weights.
      eps_.normal_(0.0, 1.0, cpu_generator(rng_key(seed_, Stream::Noise, batch.step)));
      auto eps = eps_.to(m.device());
      ivon::sample(m, h, delta_, lambda_, eps, sigma_, theta_, fused);
      if (theta_.grad().defined()) theta_.mutable_grad().zero_();
    }
    // One sample takes the plain forward path (no batched matmuls).
    auto weights = mc_samples_ == 1 ? theta_.select(0, 0) : theta_;
    auto out = reduction_.forward(p, batch, weights);
    if (mc_samples_ == 1) out = out.unsqueeze(0);
    auto log_sigma = state_.count("log_sigma") ? state_["log_sigma"] : torch::Tensor();
    // Per-example NLL gradient of each sample (the prior enters through delta, not the gradient).
    const double batch_size = static_cast<double>(batch.x.size(0));
    auto nll = p.likelihood.nll_stacked(out, batch.y, log_sigma) / batch_size;
    nll.sum().backward();
    at::NoGradGuard no_grad;
    // Kept on theta_ and reused: with overlapped sums autograd never allocates it.
    if (!theta_.grad().defined()) theta_.mutable_grad() = at::zeros_like(theta_);
    auto grad = theta_.grad();
    if (reduction_.active(p, batch)) {
      auto sums = mc_samples_ == 1 ? grad.select(0, 0) : grad;
      reduction_.finish(p, batch, sums);
    } else {
      reduce_gradients(p, batch, {grad});
    }
    // The schedule runs over the configured steps, so an early-stopped run ends mid-way down it.
    const double lr = cosine_ ? cyclical_lr(lr_, std::min(steps_, total_steps_ - 1), total_steps_, 1) : lr_;
    ++steps_;
    const double prior = ivon::update(m, h, g, delta_, prior_mean_, grad, eps_.to(m.device()), sigma_,
                                      {beta1_, beta2_, lambda_, lr, clip_, steps_}, fused);
    if (log_sigma.defined()) update_sigma(out, batch);
    return {nll.mean().item<double>() + prior};
  }

  std::shared_ptr<Posterior> finalize() override {
    auto variance = 1.0 / (lambda_ * (state_["hess"] + delta_));
    return std::make_shared<GaussianPosterior>(state_["mean"].clone(), variance);
  }

  Likelihood fitted_likelihood() const override {
    Likelihood l = problem_->likelihood;
    auto it = state_.find("log_sigma");
    if (it != state_.end()) l.sigma = std::exp(it->second.item<double>());
    return l;
  }

  // How far h got from its initial value: hess_init_weight = beta2^steps is the weight h0 still
  // carries, so a value near 1 means the variances mostly reflect hess_init, not the data.
  nlohmann::json report() const override {
    const auto& h = state_.at("hess");
    nlohmann::json report = {{"steps", steps_},
                             {"ess", lambda_},
                             {"hess_init", hess_init_},
                             {"hess_init_weight", std::pow(beta2_, static_cast<double>(steps_))},
                             {"hess_mean", h.mean().item<double>()},
                             {"hess_min", h.min().item<double>()},
                             {"hess_max", h.max().item<double>()}};
    report.update(reduction_.report());
    return report;
  }

 private:
  // The noise level that maximizes the expected log-likelihood under q is the mean squared
  // residual over q's samples; follow its running mean (a stochastic EM step, no learning rate).
  void update_sigma(const torch::Tensor& out, const Batch& batch) {
    auto& log_sigma = state_["log_sigma"];
    const double r2 = reduce_mean(*problem_, batch, (out.select(-1, 0) - batch.y).pow(2).mean().item<double>());
    const double rate = std::max(1.0 / static_cast<double>(steps_), kSigmaRate);
    const double var = (1.0 - rate) * std::exp(2.0 * log_sigma.item<double>()) + rate * r2;
    log_sigma.fill_(0.5 * std::log(std::max(var, 1e-12)));
  }

  const Problem* problem_ = nullptr;
  std::string hess_init_text_;
  double hess_init_ = 0, beta1_, beta2_, ess_, clip_;
  int64_t mc_samples_;
  bool cosine_;
  double lambda_ = 0, lr_ = 0;
  int64_t n_ = 0, steps_ = 0, total_steps_ = 1;
  uint64_t seed_ = 0;
  torch::Tensor delta_, prior_mean_;  ///< prior precision / N, and the prior's mean (undefined: zero)
  torch::Tensor eps_, sigma_, theta_;
  BucketedReduction reduction_;
};

void validate_ivon(const Options& o) {
  auto fail = [](const std::string& what) { throw InvalidArgument("ivon: " + what); };
  const auto& h0 = o.get_string("hess_init");
  if (h0 != "auto" && !(parse_double(h0, "ivon: hess_init (auto or a number > 0)") > 0))
    fail(fmt::format("hess_init must be auto or a number > 0, got '{}' (try auto, or about the loss's curvature)", h0));
  for (const char* key : {"beta1", "beta2"})
    if (!(o.get_double(key) >= 0 && o.get_double(key) < 1))
      fail(fmt::format("{} must be in [0, 1), got {}", key, o.get_double(key)));
  if (!(o.get_double("ess") >= 0))
    fail(fmt::format("ess must be >= 0 (0: the training set size), got {}", o.get_double("ess")));
  if (o.get_int("mc_samples") < 1) fail(fmt::format("mc_samples must be >= 1, got {}", o.get_int("mc_samples")));
  if (!(o.get_double("clip") >= 0))
    fail(fmt::format("clip must be >= 0 (0: no clipping), got {}", o.get_double("clip")));
}

}  // namespace

MethodInfo ivon_method_info() {
  MethodInfo info;
  info.name = "ivon";
  info.stops_early = true;
  info.tune_space = {
      {"hess_init", {"0.1", "1", "10"}}, {"beta2", {"0.999"}}, {"clip", {"0.01"}}, {"mc_samples", {"8"}}};
  info.summary =
      "IVON variational online Newton: a diagonal Gaussian at about Adam's cost (step --lr, default 0.1: a fraction "
      "of a Newton step, not Adam's)";
  info.default_lr = 0.1;
  info.fields = {
      {"hess_init",
       FieldType::String,
       "auto",
       "initial Hessian estimate h0 (> 0); auto: 1 / sigma^2 for a Gaussian likelihood (1 with learned noise), "
       "0.1 for classification",
       {}},
      {"beta1", FieldType::Double, "0.9", "gradient momentum, in [0, 1)", {}},
      {"beta2",
       FieldType::Double,
       "0.99999",
       "Hessian momentum, in [0, 1); h forgets h0 as beta2^steps, so lower it for short runs",
       {}},
      {"ess", FieldType::Double, "0", "effective sample size lambda (0: N); variance 1 / (ess (h + delta))", {}},
      {"mc_samples", FieldType::Int, "1", "weight samples per step, their gradients averaged", {}},
      {"clip", FieldType::Double, "0", "clips each entry of the mean's step to [-clip, clip] (0: off)", {}},
      {"schedule",
       FieldType::Choice,
       "cosine",
       "step size over the run: cosine (from --lr down to 0 at the last configured step, as IVON is trained "
       "in its paper: a constant step of 0.1 leaves the mean jumping about) or constant",
       {"cosine", "constant"}}};
  info.make = [](const Options& o) { return std::make_unique<IvonMethod>(o); };
  info.validate = validate_ivon;
  return info;
}

}  // namespace credence
