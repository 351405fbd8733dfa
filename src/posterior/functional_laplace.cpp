#include "credence/posterior/functional_laplace.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <fmt/format.h>

#include <algorithm>

#include "credence/core/error.h"
#include "credence/curvature/curvature.h"

namespace credence {

torch::Tensor output_jacobian(const Model& model, const ParamSubset& subset, const torch::Tensor& theta,
                              const torch::Tensor& x, torch::Tensor* outputs) {
  at::AutoGradMode grad_mode(true);  // the factors may come from autograd, also under a caller's no-grad guard
  const int64_t n = x.size(0), C = model.output_dim();
  auto eye = at::eye(C, theta.options()).expand({n, C, C});
  auto factors = layer_factors(model, subset, theta, x, eye, outputs);
  auto J = at::zeros({n, C, subset.size}, theta.options());
  for (size_t l = 0; l < subset.layers.size(); ++l) {
    const auto& layer = subset.layers[l];
    J.narrow(2, layer.offset, layer.size()).copy_(layer.jacobian_columns(factors[l].a, factors[l].g));
  }
  return J;
}

FunctionalLaplacePosterior::FunctionalLaplacePosterior(const Model& model, torch::Tensor theta, ParamSubset subset,
                                                       torch::Tensor prior_precision, torch::Tensor inducing,
                                                       torch::Tensor factors, double sigma)
    : theta_(theta.detach()), subset_(std::move(subset)), inducing_(std::move(inducing)),
      factors_(std::move(factors)), sigma_(sigma) {
  auto p = prior_precision.to(theta_.options());
  if (p.numel() == 1) p = p.reshape({1}).expand({subset_.size});
  if (p.numel() != subset_.size || at::any(p <= 0).item<bool>())
    throw InvalidArgument(fmt::format("laplace: hessian=gp needs {} prior precisions > 0", subset_.size));
  prior_var_ = p.reciprocal().contiguous();
  const int64_t M = inducing_.size(0), D = factors_.size(2);
  // G = L^T J at the inducing rows: [M D, K].
  auto J = output_jacobian(model, subset_, theta_, inducing_);
  auto G = at::einsum("mcd,mck->mdk", {factors_.to(J.options()), J}).reshape({M * D, subset_.size}).to(at::kDouble);
  auto pv = prior_var_.to(at::kDouble);
  auto B = at::eye(M * D, G.options()) + (G * pv).mm(G.t());
  chol_ = at::linalg_cholesky(B);
  w_ = (G * pv).t().contiguous().to(theta_.scalar_type());
}

torch::Tensor FunctionalLaplacePosterior::sample(int64_t, uint64_t) const {
  throw NotSupported("laplace with hessian=gp is a posterior over functions with no weight draws; use "
                     "predictive=glm (its only predictive), or hessian=full for weight samples");
}

torch::Tensor FunctionalLaplacePosterior::function_variance(const Model& model, const torch::Tensor& x,
                                                            bool diag_only, torch::Tensor* f_mu) const {
  auto J = output_jacobian(model, subset_, theta_, x, f_mu);  // [n, C, K]
  const int64_t n = J.size(0), C = J.size(1);
  // Prior part J P^-1 J^T, minus what the inducing rows explain: |R^-1 (J W)^T|^2.
  auto JW = J.reshape({n * C, -1}).mm(w_).to(at::kDouble);                   // [n C, M D]
  auto Z = at::linalg_solve_triangular(chol_, JW.t(), /*upper=*/false);       // [M D, n C]
  Z = Z.reshape({-1, n, C}).to(J.scalar_type());
  if (diag_only) return (J * J * prior_var_).sum(-1) - Z.pow(2).sum(0);
  return (J * prior_var_).matmul(J.transpose(1, 2)) - at::einsum("mnc,mnd->ncd", {Z, Z});
}

Predictive FunctionalLaplacePosterior::predict(const Model& model, const Likelihood& likelihood,
                                               const torch::Tensor& x, double y_mean, double y_std,
                                               const PredictOptions& options) const {
  const bool diag_only = likelihood.task() == Task::Regression || link != GlmLink::MC;
  // Rows per pass so that the Jacobian [rows, C, K] stays near 16M values.
  const int64_t per_row = std::max<int64_t>(1, model.output_dim() * subset_.size);
  const int64_t rows = std::clamp<int64_t>(16'000'000 / per_row, 1, options.batch_size);
  std::vector<torch::Tensor> mus, vars;
  for (int64_t start = 0; start < x.size(0); start += rows) {
    auto xb = x.narrow(0, start, std::min(rows, x.size(0) - start));
    torch::Tensor mu;
    vars.push_back(function_variance(model, xb, diag_only, &mu));
    mus.push_back(mu);
  }
  auto var = at::cat(vars);
  var = diag_only ? var.clamp_min(0) : var;  // round-off below zero where the data pin the function
  return glm_predictive(at::cat(mus), var, likelihood, link, sigma_, y_mean, y_std, options);
}

void FunctionalLaplacePosterior::save(TensorMap& tensors, nlohmann::json& meta) const {
  tensors["flaplace.theta"] = theta_;
  tensors["flaplace.prior_precision"] = prior_var_.reciprocal();
  tensors["flaplace.inducing"] = inducing_;
  tensors["flaplace.factors"] = factors_;
  tensors["flaplace.subset_index"] = subset_.index;
  meta["functional_laplace"] = {
      {"subset", subset_.spec},
      {"sigma", sigma_},
      {"link", to_string(link)}};
}

std::unique_ptr<FunctionalLaplacePosterior> FunctionalLaplacePosterior::load(const TensorMap& tensors,
                                                                            const nlohmann::json& meta,
                                                                            const Model& model) {
  const auto& m = meta.at("functional_laplace");
  auto get = [&](const std::string& name) { return posterior_tensor(tensors, name).to(model.device()); };
  auto post = std::make_unique<FunctionalLaplacePosterior>(model, get("flaplace.theta"),
                                                           ParamSubset::restore(m.at("subset"), model,
                                                                                get("flaplace.subset_index")),
                                                           get("flaplace.prior_precision"), get("flaplace.inducing"),
                                                           get("flaplace.factors"), m.at("sigma").get<double>());
  post->link = parse_glm_link(m.at("link"));
  return post;
}

}  // namespace credence
