#include "credence/methods/function_prior.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <fmt/format.h>
#include <torch/csrc/autograd/autograd.h>

#include <cmath>

#include "credence/core/error.h"
#include "credence/core/rng.h"
#include "credence/core/spec.h"
#include "credence/posterior/gp.h"

namespace credence {

FunctionPrior FunctionPrior::parse(const std::string& text) {
  if (!is_function_prior_spec(text))
    throw InvalidArgument(fmt::format("prior '{}' is not a prior over functions (gp:KERNEL?...)", text));
  Spec spec = Spec::parse(text);
  spec.check_keys({"lengthscale", "amplitude", "points", "context", "margin", "jitter"}, false);
  FunctionPrior p;
  p.spec = text;
  p.kernel = spec.body.empty() ? "rbf" : spec.body;
  parse_gp_kernel(p.kernel);  // names the known kernels when unknown
  p.from_evidence = spec.get("lengthscale", "") == "auto";
  if (p.from_evidence && spec.has("amplitude"))
    throw InvalidArgument(fmt::format("prior '{}': lengthscale=auto learns the amplitude too; drop amplitude=", text));
  if (p.from_evidence && p.kernel == "linear")
    throw InvalidArgument(fmt::format("prior '{}': the linear kernel has no length scale", text));
  p.lengthscale = p.from_evidence ? 1.0 : spec.get_double("lengthscale", 1.0);
  p.amplitude = spec.get_double("amplitude", 1.0);
  p.points = spec.get_int("points", 32);
  p.context = spec.get("context", "box");
  p.margin = spec.get_double("margin", 0.5);
  p.jitter = spec.get_double("jitter", 1e-4);
  if (!(p.lengthscale > 0) || !(p.amplitude > 0) || !(p.jitter > 0) || !(p.margin >= 0) || p.points < 1)
    throw InvalidArgument(fmt::format("prior '{}': lengthscale, amplitude and jitter must be > 0, margin >= 0 and "
                                      "points >= 1",
                                      text));
  if (p.context != "box" && p.context != "train")
    throw InvalidArgument(fmt::format("prior '{}': context '{}' unknown (known: box, train)", text, p.context));
  return p;
}

torch::Tensor FunctionPrior::context_points(const torch::Tensor& train_x, uint64_t key) const {
  if (train_x.dim() != 2)
    throw InvalidArgument(fmt::format("prior '{}': a prior over functions needs tabular inputs [N, D]", spec));
  if (context == "train") {
    if (points > train_x.size(0))
      throw InvalidArgument(fmt::format("prior '{}': {} context points from {} training rows", spec, points,
                                        train_x.size(0)));
    return train_x.narrow(0, 0, points);
  }
  auto lo = std::get<0>(train_x.min(0)), hi = std::get<0>(train_x.max(0));
  auto range = hi - lo;
  auto u = at::rand({points, train_x.size(1)}, cpu_generator(key), train_x.options().device(torch::kCPU))
               .to(train_x.device());
  return lo - margin * range + u * (range * (1 + 2 * margin));
}

torch::Tensor FunctionPrior::kl(const Model& model, const torch::Tensor& mean, const torch::Tensor& var,
                                const torch::Tensor& xc) const {
  const int64_t M = xc.size(0);
  at::AutoGradMode grad_mode(true);  // also under a caller's no-grad guard (the ELBO estimate)
  // The Jacobian rows at the mean, one backward pass per context point and output.
  auto at_mean = mean.detach().clone().requires_grad_(true);
  auto out = model.forward(xc, at_mean, nullptr);  // [M, C]
  const int64_t C = out.size(1);
  std::vector<torch::Tensor> rows;
  for (int64_t c = 0; c < C; ++c)
    for (int64_t m = 0; m < M; ++m)
      rows.push_back(torch::autograd::grad({out[m][c]}, {at_mean}, {}, /*retain_graph=*/true)[0]);
  auto J = at::stack(rows).view({C, M, -1});  // [C, M, P]

  auto f = model.forward(xc, mean, nullptr);  // [M, C], differentiable in the mean
  GpKernel k;
  k.kind = parse_gp_kernel(kernel);
  k.log_lengthscale = ard_log_lengthscale.defined() ? ard_log_lengthscale.to(xc.options())
                                                    : at::full({xc.size(1)}, std::log(lengthscale), xc.options());
  k.log_amplitude = at::full({}, std::log(amplitude), xc.options());
  auto eye = at::eye(M, xc.options());
  auto K = k(xc, xc) + jitter * eye;
  auto LK = at::linalg_cholesky(K);
  auto logdet_K = 2 * at::log(LK.diagonal()).sum();
  auto total = at::zeros({}, xc.options());
  for (int64_t c = 0; c < C; ++c) {
    auto S = (J[c] * var).mm(J[c].t()) + jitter * eye;  // J diag(var) J^T
    auto LS = at::linalg_cholesky(S);
    auto A = at::linalg_solve_triangular(LK, LS, /*upper=*/false);  // tr(K^-1 S) = |LK^-1 LS|^2
    auto z = at::linalg_solve_triangular(LK, f.select(1, c).unsqueeze(1), /*upper=*/false);
    total = total + 0.5 * (A.pow(2).sum() + z.pow(2).sum() - M + logdet_K - 2 * at::log(LS.diagonal()).sum());
  }
  return total;
}

}  // namespace credence
