#include "credence/methods/ensemble.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <torch/optim/adam.h>

#include <cmath>

#include "credence/core/error.h"
#include "credence/core/rng.h"

namespace credence {
namespace {

class EnsembleMethod : public Method {
 public:
  explicit EnsembleMethod(const Options& o) : options_(o) {}

  void init(const Problem& problem) override {
    problem_ = &problem;
    const long members = options_.get_int("members");
    if (members < 1) throw InvalidArgument(fmt::format("ensemble: members must be >= 1, got {}", members));
    // Member 0 starts where MAP starts, so a one-member ensemble is MAP; the others get keyed seeds.
    std::vector<torch::Tensor> inits;
    const uint64_t seed = problem.train_options.seed;
    for (long m = 0; m < members; ++m)
      inits.push_back(problem.model->init_params(m == 0 ? seed : rng_key(seed, Stream::Init, 1, m)));
    auto theta = at::stack(inits).requires_grad_(true);
    state_["theta"] = theta;
    std::vector<torch::Tensor> params = {theta};
    if (problem.likelihood.kind == LikelihoodKind::Gaussian && problem.likelihood.learn_sigma) {
      // One noise level shared by the members (use --likelihood heteroscedastic for per-member noise).
      state_["log_sigma"] = at::full({}, std::log(problem.likelihood.sigma), theta.options()).requires_grad_(true);
      params.push_back(state_["log_sigma"]);
    }
    // Adam is elementwise, so one optimizer over the stacked members trains each independently.
    optimizer_ = std::make_unique<torch::optim::Adam>(params, torch::optim::AdamOptions(problem.train_options.lr));
  }

  StepInfo step(const Batch& batch) override {
    const auto& p = *problem_;
    auto& theta = state_["theta"];
    optimizer_->zero_grad();
    auto out = p.model->forward(batch.x, theta);  // [M, B, O] in one stacked pass
    auto ls = state_.count("log_sigma") ? state_["log_sigma"] : torch::Tensor();
    auto nll = p.likelihood.nll_stacked(out, batch.y, ls).sum() / batch.x.size(0);
    nll.backward();
    if (!theta.grad().defined()) theta.mutable_grad() = at::zeros_like(theta);
    double prior = p.prior.add_grad(theta, theta.mutable_grad(), 1.0 / static_cast<double>(p.train.size()));
    optimizer_->step();
    return {(nll.item<double>() + prior) / theta.size(0)};
  }

  std::shared_ptr<Posterior> finalize() override {
    return std::make_shared<ParticlePosterior>(state_["theta"].detach().clone());
  }

  Likelihood fitted_likelihood() const override {
    Likelihood l = problem_->likelihood;
    auto it = state_.find("log_sigma");
    if (it != state_.end()) l.sigma = std::exp(it->second.item<double>());
    return l;
  }

 private:
  Options options_;
  const Problem* problem_ = nullptr;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
};

}  // namespace

MethodInfo ensemble_method_info() {
  MethodInfo info;
  info.name = "ensemble";
  info.summary = "Deep ensemble: M independently initialized members trained as one batched computation";
  info.fields = {{"members", FieldType::Int, "5", "number of members", {}}};
  info.make = [](const Options& o) { return std::make_unique<EnsembleMethod>(o); };
  return info;
}

}  // namespace credence
