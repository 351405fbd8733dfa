#include "credence/fit/meta.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <torch/optim/lbfgs.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "credence/core/error.h"
#include "credence/curvature/curvature.h"
#include "credence/likelihood/likelihood.h"
#include "credence/posterior/laplace.h"

namespace credence {
namespace {

// The MAP of one task under N(mean, 1 / precision), from `theta` (updated in place).
void fit_task(const Model& model, const Likelihood& lik, const Dataset& task, const torch::Tensor& mean,
              const torch::Tensor& precision, torch::Tensor& theta, int64_t steps) {
  auto t = theta.detach().clone().requires_grad_(true);
  torch::optim::LBFGS opt({t}, torch::optim::LBFGSOptions(1.0).max_iter(steps).tolerance_grad(1e-9)
                                   .tolerance_change(1e-12).history_size(20).line_search_fn("strong_wolfe"));
  opt.step([&] {
    opt.zero_grad();
    auto d = t - mean;
    auto loss = lik.nll(model.forward(task.x, t, nullptr), task.y) + 0.5 * (precision * d * d).sum();
    loss.backward();
    return loss;
  });
  theta = t.detach();
}

}  // namespace

MetaFitResult meta_fit(const MetaFitRequest& r) {
  const auto& raw = r.tasks.tasks;
  if (raw.size() < 1) throw InvalidArgument(fmt::format("meta-fit: task family '{}' has no tasks", r.tasks.name));
  if (r.rounds < 1 || r.steps < 1) throw InvalidArgument("meta-fit: rounds and steps must be >= 1");
  if (r.variance != "tensor" && r.variance != "shared" && r.variance != "parameter")
    throw InvalidArgument(fmt::format("meta-fit: variance '{}' unknown (known: tensor, shared, parameter)", r.variance));
  int64_t rank = 0;
  auto structure = r.hessian == "auto" ? Structure::LowRank : parse_structure(r.hessian, &rank);
  for (const auto& t : raw)
    if (t.size() < 1) throw DataError(fmt::format("meta-fit: task '{}' is empty", t.name));

  MetaFitResult result;
  Dataset pooled = pool_tasks(r.tasks);
  auto standardizer = r.standardize ? Standardizer::fit(pooled) : Standardizer{};
  auto lik = Likelihood::parse(r.likelihood, pooled);
  const bool gaussian = lik.kind == LikelihoodKind::Gaussian;
  auto in_units = [&](const Dataset& d) {  // standardized, in the fit's dtype
    Dataset s = standardizer.apply(d);
    s.x = s.x.to(r.dtype);
    if (s.task == Task::Regression) s.y = s.y.to(r.dtype);
    return s;
  };
  std::vector<Dataset> tasks;
  for (const auto& t : raw) tasks.push_back(in_units(t));
  auto model = make_model(r.model, pooled.input_shape(), lik.output_dim(pooled), r.dtype);
  const auto& layout = model->layout();
  auto subset = ParamSubset::parse("all", *model);
  if (r.hessian == "auto") {
    // A task's GGN has rank at most rows x outputs: low-rank with that rank is exact, and cheap
    // for the small tasks meta-learning is for; else the full matrix where it is small.
    int64_t rows = 0;
    for (const auto& t : tasks) rows = std::max(rows, t.size());
    rank = rows * model->output_dim();
    if (rank > 256 || rank >= layout.size) structure = layout.size <= 3000 ? Structure::Full : Structure::Kron;
  }
  auto opts = at::TensorOptions().dtype(r.dtype);

  // Start: a unit Gaussian, centred on the MAP of all tasks pooled when the mean is learned.
  auto precision = at::ones({layout.size}, opts);
  auto mean = at::zeros({layout.size}, opts);
  if (r.learn_mean) {
    auto theta = model->init_params(r.seed);
    fit_task(*model, lik, in_units(pooled), mean, precision, theta, 4 * r.steps);
    mean = theta;
  }
  std::vector<torch::Tensor> thetas(tasks.size(), mean);
  const double total_rows = static_cast<double>(pooled.size());
  // With a network the Laplace evidence is an approximation and EM on it need not climb: keep the
  // prior with the highest evidence seen.
  double best_evidence = -std::numeric_limits<double>::infinity(), best_sigma = lik.sigma;
  torch::Tensor best_mean = mean, best_precision = precision;
  int64_t best_round = 0;
  for (int64_t round = 0; round < r.rounds; ++round) {
    auto sum_theta = at::zeros_like(mean), sum_sq = at::zeros_like(mean), sum_var = at::zeros_like(mean);
    double evidence = 0.0, expected_sq_residual = 0.0;
    for (size_t t = 0; t < tasks.size(); ++t) {
      fit_task(*model, lik, tasks[t], mean, precision, thetas[t], round == 0 ? 4 * r.steps : r.steps);
      auto curvature =
          structure == Structure::LowRank
              ? compute_lowrank_curvature(*model, lik, subset, thetas[t], tasks[t], CurvatureKind::GGN, rank)
              : compute_curvature(*model, lik, subset, thetas[t], tasks[t], structure, CurvatureKind::GGN);
      const double ssr = curvature.sum_sq_residual;
      LaplacePosterior post(thetas[t], subset, std::move(curvature), precision, lik.sigma, 1.0);
      post.set_prior_mean(mean);
      evidence += post.log_marginal_likelihood();
      sum_var += post.marginal_variance();
      sum_theta += thetas[t];
      sum_sq += thetas[t] * thetas[t];
      if (gaussian && lik.learn_sigma)
        expected_sq_residual += ssr + post.function_variance(*model, tasks[t].x, true).sum().item<double>();
    }
    result.log_evidence.push_back(evidence);
    if (evidence > best_evidence)
      best_evidence = evidence, best_mean = mean, best_precision = precision, best_sigma = lik.sigma, best_round = round;
    if (!r.quiet) fmt::print(stderr, "meta-fit round {}/{}: summed log evidence {:.4f}\n", round + 1, r.rounds, evidence);
    // M-step. E[(theta - m)^2] over tasks = mean theta^2 - 2 m mean theta + m^2, plus each posterior's variance.
    const double T = static_cast<double>(tasks.size());
    if (r.learn_mean) mean = sum_theta / T;
    auto second = (sum_sq - 2.0 * mean * sum_theta) / T + mean * mean + sum_var / T;
    auto variance = at::empty_like(mean);
    if (r.variance == "shared") {
      variance.fill_(second.mean().item<double>());
    } else if (r.variance == "parameter") {
      variance.copy_(second);
    } else {
      for (const auto& b : layout.blocks)
        variance.narrow(0, b.offset, b.numel).fill_(second.narrow(0, b.offset, b.numel).mean().item<double>());
    }
    precision = variance.clamp_min(1e-10).reciprocal();
    if (gaussian && lik.learn_sigma) lik.sigma = std::sqrt(std::max(expected_sq_residual / total_rows, 1e-12));
    if (!std::isfinite(evidence) || !at::isfinite(precision).all().item<bool>())
      throw NumericalError("meta-fit: the evidence or the learned precisions are not finite; try hessian=diag, a "
                           "smaller model or fewer steps");
  }

  result.sigma = best_sigma;
  auto& file = result.prior;
  file.prior.precision = best_precision;
  if (r.learn_mean) file.prior.mean = best_mean;
  file.has_units = r.standardize;
  file.standardizer = standardizer;
  file.model = r.model;
  file.info = {{"objective", "laplace-evidence-em"},
               {"tasks", r.tasks.name},
               {"num_tasks", raw.size()},
               {"rounds", r.rounds},
               {"steps", r.steps},
               {"hessian", r.hessian},
               {"variance", r.variance},
               {"learn_mean", r.learn_mean},
               {"log_evidence", result.log_evidence},
               {"best_round", best_round + 1}};
  if (gaussian) file.info["sigma"] = best_sigma;
  return result;
}

}  // namespace credence
