#include "credence/methods/gp.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <torch/optim/lbfgs.h>

#include <cmath>
#include <limits>
#include <vector>

#include "credence/core/error.h"
#include "credence/posterior/gp.h"

namespace credence {
namespace {

constexpr int64_t kMaxRows = 5000;      // exact inference costs N^3 time and N^2 memory
constexpr double kMinNoiseVar = 1e-6;   // standardized units: keeps K + noise well conditioned
constexpr double kMaxLogParam = 7.0;    // |log| of length scales and amplitude stays below this

class GpMethod : public Method {
 public:
  explicit GpMethod(const Options& options) : options_(options) {}
  bool wants_batches() const override { return false; }

  void init(const Problem& problem) override {
    const auto& train = problem.train;
    if (train.task != Task::Regression || problem.likelihood.kind != LikelihoodKind::Gaussian)
      throw InvalidArgument("gp: exact GP regression needs a regression task with the Gaussian likelihood; for "
                            "classification use a network method (laplace, ensemble, ...)");
    if (train.size() > kMaxRows)
      throw InvalidArgument(fmt::format("gp: {} rows is too many for an exact GP (time N^3, memory N^2); keep at "
                                        "most {} (e.g. the spec's n= or a subset)",
                                        train.size(), kMaxRows));
    likelihood_ = problem.likelihood;
    x_ = train.x.detach().flatten(1).to(at::kDouble);
    y_ = train.y.detach().to(at::kDouble);
    const int64_t D = x_.size(1);
    auto opts = x_.options();
    kernel_.kind = parse_gp_kernel(options_.get_string("kernel"));
    kernel_.log_lengthscale = at::full({D}, std::log(options_.get_double("lengthscale")), opts);
    kernel_.log_amplitude = at::full({}, std::log(options_.get_double("amplitude")), opts);
    log_noise_ = at::full({}, 2 * std::log(std::max(likelihood_.sigma, 1e-3)), opts);
    if (options_.get_bool("optimize")) optimize();
  }

  std::shared_ptr<Posterior> finalize() override {
    auto post = std::make_shared<GpPosterior>(x_, y_, kernel_, noise_var().item<double>());
    likelihood_.sigma = std::sqrt(post->noise_var());
    report_ = {{"kernel", to_string(kernel_.kind)},
               {"log_marginal_likelihood", post->log_marginal_likelihood()},
               {"amplitude", kernel_.log_amplitude.exp().item<double>()},
               {"noise_std", likelihood_.sigma}};
    if (kernel_.kind != GpKernelKind::Linear) {
      auto ls = kernel_.log_lengthscale.exp();
      report_["lengthscales"] = std::vector<double>(ls.data_ptr<double>(), ls.data_ptr<double>() + ls.numel());
    }
    return post;
  }
  Likelihood fitted_likelihood() const override { return likelihood_; }
  nlohmann::json report() const override { return report_; }

 private:
  torch::Tensor noise_var() const {
    return likelihood_.learn_sigma ? log_noise_.exp() + kMinNoiseVar : at::full({}, likelihood_.sigma * likelihood_.sigma, x_.options());
  }

  // Type-II maximum likelihood: L-BFGS on the log hyper-parameters.
  void optimize() {
    std::vector<torch::Tensor> params = {kernel_.log_amplitude.requires_grad_()};
    if (kernel_.kind != GpKernelKind::Linear) params.push_back(kernel_.log_lengthscale.requires_grad_());
    if (likelihood_.learn_sigma) params.push_back(log_noise_.requires_grad_());
    torch::optim::LBFGS lbfgs(params, torch::optim::LBFGSOptions(1.0)
                                          .max_iter(options_.get_int("steps"))
                                          .line_search_fn("strong_wolfe"));
    // The line search can step where the kernel matrix is singular (an exception) or the loss is
    // not finite: the best finite point evaluated stands.
    double best = std::numeric_limits<double>::infinity();
    std::vector<torch::Tensor> best_params;
    for (const auto& p : params) best_params.push_back(p.detach().clone());
    auto closure = [&]() -> torch::Tensor {
      lbfgs.zero_grad();
      GpKernel k = kernel_;
      k.log_amplitude = kernel_.log_amplitude.clamp(-kMaxLogParam, kMaxLogParam);
      k.log_lengthscale = kernel_.log_lengthscale.clamp(-kMaxLogParam, kMaxLogParam);
      auto loss = gp_neg_log_marginal_likelihood(k, x_, y_, noise_var());
      const double value = loss.item<double>();
      if (std::isfinite(value) && value < best) {
        best = value;
        for (size_t i = 0; i < params.size(); ++i) best_params[i] = params[i].detach().clone();
      }
      loss.backward();
      return loss;
    };
    try {
      lbfgs.step(closure);
    } catch (const c10::Error&) {
    }
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < params.size(); ++i) params[i].requires_grad_(false).copy_(best_params[i]);
    kernel_.log_amplitude = kernel_.log_amplitude.detach().clamp(-kMaxLogParam, kMaxLogParam);
    kernel_.log_lengthscale = kernel_.log_lengthscale.detach().clamp(-kMaxLogParam, kMaxLogParam);
    log_noise_ = log_noise_.detach();
  }

  Options options_;
  Likelihood likelihood_;
  GpKernel kernel_;
  torch::Tensor x_, y_, log_noise_;
  nlohmann::json report_ = nlohmann::json::object();
};

}  // namespace

MethodInfo gp_method_info() {
  MethodInfo info;
  info.name = "gp";
  info.summary = "Exact Gaussian-process regression (ARD kernel, hyper-parameters by marginal likelihood); "
                 "ignores --model";
  info.uses_network = false;
  info.uses_weight_prior = false;
  info.fields = {
      {"kernel", FieldType::Choice, "matern52", "rbf, matern52 (ARD: one length scale per input) or linear",
       {"rbf", "matern52", "linear"}},
      {"lengthscale", FieldType::Double, "1", "length scale (standardized inputs): the start, or fixed", {}},
      {"amplitude", FieldType::Double, "1", "kernel amplitude (standardized targets): the start, or fixed", {}},
      {"optimize", FieldType::Bool, "true", "fit length scales, amplitude and noise by marginal likelihood", {}},
      {"steps", FieldType::Int, "100", "L-BFGS iterations of that fit", {}}};
  info.make = [](const Options& o) { return std::make_unique<GpMethod>(o); };
  info.validate = [](const Options& o) {
    if (!(o.get_double("lengthscale") > 0) || !(o.get_double("amplitude") > 0))
      throw InvalidArgument("gp: lengthscale and amplitude must be > 0");
    if (o.get_int("steps") < 1) throw InvalidArgument("gp: steps must be >= 1");
  };
  return info;
}

}  // namespace credence
