#include "credence/methods/pacbayes.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <torch/optim/adam.h>

#include <cmath>

#include "credence/core/error.h"
#include "credence/core/rng.h"
#include "credence/posterior/certified.h"
#include "inner_fit.h"
#include "trainer.h"

namespace credence {

torch::Tensor pacbayes_objective(const std::string& bound, const torch::Tensor& risk, const torch::Tensor& kl,
                                 int64_t n, double delta) {
  const double dn = static_cast<double>(n);
  auto c = (kl + std::log(2.0 * std::sqrt(dn) / delta)) / dn;
  if (bound == "classic") return risk + at::sqrt(c / 2);
  if (bound == "quad") return at::pow(at::sqrt(risk + c / 2) + at::sqrt(c / 2), 2);
  if (bound == "lambda") {
    // Thiemann et al.'s optimal lambda for the current risk and complexity (not differentiated).
    const double r = risk.item<double>(), cv = c.item<double>();
    const double lambda = 2.0 / (std::sqrt(2.0 * r / cv + 1.0) + 1.0);
    return risk / (1 - lambda / 2) + c / (lambda * (1 - lambda / 2));
  }
  throw InvalidArgument(fmt::format("pacbayes: unknown objective '{}' (known: classic, quad, lambda)", bound));
}

namespace {

// MAP on the prior rows, with the same recipe as the posterior's training.
class PriorTrainer : public PointTrainer {
 public:
  void init(const Problem& problem) override {
    setup(problem, problem.model->init_params(problem.train_options.seed), "adam");
  }
  torch::Tensor theta() { return state_["theta"].detach().clone(); }
};

torch::Tensor learn_prior_mean(const Problem& problem, const torch::Tensor& rows, int64_t epochs) {
  Problem sub = problem;
  sub.train = problem.train.subset(rows.to(problem.train.x.device()));
  PriorTrainer trainer;
  train_inner(trainer, sub, epochs, 1, "prior");
  return trainer.theta();
}

class PacBayesMethod : public Method {
 public:
  explicit PacBayesMethod(const Options& o) : options_(o) {}
  bool data_parallel() const override { return true; }

  void init(const Problem& problem) override {
    problem_ = &problem;
    if (problem.likelihood.kind != LikelihoodKind::Categorical)
      throw InvalidArgument(
          "pacbayes: needs a classification task with the categorical likelihood (its bounds are on the 0-1 "
          "error and the bounded cross-entropy)");
    const auto& model = *problem.model;
    const auto& o = problem.train_options;
    const int64_t n = problem.train.size();
    torch::Tensor prior_mean;
    std::string prior = options_.get_string("prior");
    if (prior == "auto") prior = problem.prior.source.empty() ? "data" : "given";
    if (prior == "given" && problem.prior.source.empty())
      throw InvalidArgument("pacbayes: prior=given needs a learned prior (--prior FILE from credence meta-fit)");
    prior_kind_ = prior;
    if (prior == "given") {
      // A prior learned on other tasks saw none of these rows: the bound uses them all.
      prior_rows_ = at::empty({0}, at::kLong);
      prior_mean = problem.prior.has_mean() ? problem.prior.mean : at::zeros_like(problem.prior.precision);
      prior_variance_ = problem.prior.precision.reciprocal().detach();
    } else if (prior == "data") {
      const double f = options_.get_double("prior_fraction");
      const int64_t k = static_cast<int64_t>(std::llround(f * n));
      if (k < 1 || k >= n)
        throw InvalidArgument(fmt::format(
            "pacbayes: prior_fraction={} of {} examples leaves no rows for the prior or none for the bound", f, n));
      auto perm = keyed_permutation(n, rng_key(o.seed, Stream::Holdout, 1, 1));
      prior_rows_ = std::get<0>(perm.narrow(0, 0, k).sort());
      const long epochs = options_.get_int("prior_epochs");
      prior_mean = learn_prior_mean(problem, prior_rows_, epochs > 0 ? epochs : o.epochs);
    } else {
      prior_rows_ = at::empty({0}, at::kLong);
      prior_mean = model.init_params(o.seed);
    }
    n_bound_ = n - prior_rows_.size(0);
    prior_mean_ = prior_mean.detach();
    prior_std_ = options_.get_double("prior_std");
    // The posterior starts at the prior (KL = 0), as in Pérez-Ortiz et al.
    state_["mean"] = prior_mean_.clone().requires_grad_(true);
    state_["rho"] = (prior_variance_.defined() ? at::log(at::expm1(prior_variance_.sqrt()))
                                               : at::full_like(prior_mean_, std::log(std::expm1(prior_std_))))
                        .requires_grad_(true);
    optimizer_ = std::make_unique<torch::optim::Adam>(std::vector<torch::Tensor>{state_["mean"], state_["rho"]},
                                                      torch::optim::AdamOptions(o.lr));
  }

  StepInfo step(const Batch& batch) override {
    optimizer_->zero_grad();
    auto& mean = state_["mean"];
    auto sd = at::softplus(state_["rho"]);
    const int64_t S = options_.get_int("samples");
    auto eps = keyed_randn({S, mean.size(0)}, rng_key(problem_->train_options.seed, Stream::Noise, batch.step),
                           mean.options());
    auto theta = mean + sd * eps;
    auto logits = S == 1 ? problem_->model->forward(batch.x, theta[0]).unsqueeze(0)
                         : problem_->model->forward(batch.x, theta);
    auto risk = bounded_cross_entropy(logits, batch.y.unsqueeze(0).expand({S, batch.y.size(0)}),
                                      options_.get_double("pmin"))
                    .mean();
    // The bound is not linear in the risk: on a shard, evaluate it at the whole minibatch's risk
    // with this shard's risk gradient, which reduce_gradients then weighs and sums.
    const double local = risk.item<double>(), whole = reduce_mean(*problem_, batch, local);
    if (whole != local) risk = risk - local + whole;
    auto kl = prior_variance_.defined() ? kl_to_diagonal_gaussian(mean, sd * sd, prior_mean_, prior_variance_)
                                        : kl_to_isotropic_gaussian(mean, sd * sd, prior_mean_, prior_std_);
    auto loss = pacbayes_objective(options_.get_string("objective"), risk, kl, n_bound_,
                                   options_.get_double("delta"));
    loss.backward();
    reduce_gradients(*problem_, batch, state_);
    optimizer_->step();
    last_ = {{"objective", loss.item<double>()}, {"risk", risk.item<double>()}, {"kl", kl.item<double>()}};
    return {loss.item<double>()};
  }

  std::shared_ptr<Posterior> finalize() override {
    at::NoGradGuard no_grad;
    auto sd = at::softplus(state_["rho"]);
    auto posterior =
        prior_variance_.defined()
            ? std::make_shared<CertifiedGaussianPosterior>(state_["mean"], sd * sd, prior_mean_, prior_variance_,
                                                           prior_rows_)
            : std::make_shared<CertifiedGaussianPosterior>(state_["mean"], sd * sd, prior_mean_, prior_std_,
                                                           prior_rows_);
    report_ = {{"objective", options_.get_string("objective")},
               {"prior", prior_kind_},
               {"prior_rows", prior_rows_.size(0)},
               {"bound_rows", n_bound_},
               {"kl", posterior->kl()},
               {"last_step", last_}};
    return posterior;
  }

  Likelihood fitted_likelihood() const override { return problem_->likelihood; }
  nlohmann::json report() const override { return report_; }

 private:
  Options options_;
  const Problem* problem_ = nullptr;
  torch::Tensor prior_mean_, prior_rows_, prior_variance_;  ///< prior_variance_: a learned prior's
  std::string prior_kind_;
  double prior_std_ = 0.03;
  int64_t n_bound_ = 0;
  std::unique_ptr<torch::optim::Adam> optimizer_;
  nlohmann::json last_ = nlohmann::json::object(), report_ = nlohmann::json::object();
};

}  // namespace

MethodInfo pacbayes_method_info() {
  MethodInfo info;
  info.name = "pacbayes";
  info.summary = "PAC-Bayes training: a Gaussian posterior minimizing a risk bound; certify it with `credence bound`";
  info.fields = {
      {"objective", FieldType::Choice, "quad", "bound minimized: classic (McAllester), quad, lambda (Thiemann)",
       {"classic", "quad", "lambda"}},
      {"prior", FieldType::Choice, "auto",
       "auto (given with a learned --prior FILE, else data); data: prior mean = MAP on prior_fraction of the "
       "training rows (the bound uses the rest); init: the initialization (the bound uses every row); given: the "
       "learned --prior FILE, its mean and variances (the bound uses every row)",
       {"auto", "data", "init", "given"}},
      {"prior_fraction", FieldType::Double, "0.5", "share of the training rows the data prior learns from", {}},
      {"prior_epochs", FieldType::Int, "0", "epochs of the prior's MAP fit (0: --epochs)", {}},
      {"prior_std", FieldType::Double, "0.03", "prior standard deviation of every parameter; the posterior starts there", {}},
      {"pmin", FieldType::Double, "1e-4", "probability floor of the bounded cross-entropy", {}},
      {"delta", FieldType::Double, "0.025", "confidence of the bound being minimized", {}},
      {"samples", FieldType::Int, "1", "weight samples per step", {}}};
  info.make = [](const Options& o) { return std::make_unique<PacBayesMethod>(o); };
  info.validate = [](const Options& o) {
    const double f = o.get_double("prior_fraction");
    if (!(f > 0 && f < 1))
      throw InvalidArgument(fmt::format("pacbayes: prior_fraction must be in (0, 1), got {}", f));
    if (o.get_int("prior_epochs") < 0)
      throw InvalidArgument(fmt::format("pacbayes: prior_epochs must be >= 0, got {}", o.get_int("prior_epochs")));
    if (!(o.get_double("prior_std") > 0))
      throw InvalidArgument(fmt::format("pacbayes: prior_std must be > 0, got {}", o.get_double("prior_std")));
    const double pmin = o.get_double("pmin");
    if (!(pmin > 0 && pmin < 1)) throw InvalidArgument(fmt::format("pacbayes: pmin must be in (0, 1), got {}", pmin));
    const double d = o.get_double("delta");
    if (!(d > 0 && d < 1)) throw InvalidArgument(fmt::format("pacbayes: delta must be in (0, 1), got {}", d));
    if (o.get_int("samples") < 1)
      throw InvalidArgument(fmt::format("pacbayes: samples must be >= 1, got {}", o.get_int("samples")));
  };
  return info;
}

}  // namespace credence
