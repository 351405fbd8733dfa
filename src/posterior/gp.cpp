#include "credence/posterior/gp.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <cmath>

#include "credence/core/error.h"
#include "credence/core/rng.h"

namespace credence {
namespace {

// Cholesky of a kernel matrix, adding jitter (relative to its mean diagonal) until it succeeds:
// an exact GP on near-duplicate inputs is singular up to rounding.
torch::Tensor robust_cholesky(const torch::Tensor& K) {
  const double scale = K.diagonal().mean().item<double>();
  for (double jitter : {0.0, 1e-10, 1e-8, 1e-6, 1e-4}) {
    auto A = jitter > 0 ? K + jitter * scale * at::eye(K.size(0), K.options()) : K;
    auto [L, info] = at::linalg_cholesky_ex(A);
    if (info.item<int64_t>() == 0) return L;
  }
  throw NumericalError("gp: the kernel matrix is not positive definite even with jitter (duplicate inputs with "
                       "zero noise?); learn the noise or give likelihood gaussian?sigma=S with S > 0");
}

}  // namespace

GpKernelKind parse_gp_kernel(const std::string& name) {
  if (name == "rbf") return GpKernelKind::Rbf;
  if (name == "matern52") return GpKernelKind::Matern52;
  if (name == "linear") return GpKernelKind::Linear;
  throw InvalidArgument(fmt::format("unknown GP kernel '{}' (known: rbf, matern52, linear)", name));
}

const char* to_string(GpKernelKind kind) {
  switch (kind) {
    case GpKernelKind::Rbf: return "rbf";
    case GpKernelKind::Matern52: return "matern52";
    case GpKernelKind::Linear: return "linear";
  }
  return "?";
}

torch::Tensor GpKernel::operator()(const torch::Tensor& a, const torch::Tensor& b) const {
  auto amp2 = (2 * log_amplitude).exp();
  if (kind == GpKernelKind::Linear) return amp2 * (a.mm(b.t()) + 1.0);
  auto inv = (-log_lengthscale).exp();
  auto as = a * inv, bs = b * inv;
  // Squared distances from norms; clamped because rounding can make them slightly negative.
  auto r2 = (as.pow(2).sum(1, true) + bs.pow(2).sum(1).unsqueeze(0) - 2 * as.mm(bs.t())).clamp_min(0);
  if (kind == GpKernelKind::Rbf) return amp2 * (-0.5 * r2).exp();
  auto r = (r2 + 1e-12).sqrt();  // the offset keeps the gradient finite at r = 0
  const double s5 = std::sqrt(5.0);
  return amp2 * (1 + s5 * r + 5.0 / 3.0 * r2) * (-s5 * r).exp();
}

torch::Tensor GpKernel::diag(const torch::Tensor& x) const {
  auto amp2 = (2 * log_amplitude).exp();
  if (kind == GpKernelKind::Linear) return amp2 * (x.pow(2).sum(1) + 1.0);
  return amp2 * at::ones({x.size(0)}, x.options());
}

torch::Tensor gp_neg_log_marginal_likelihood(const GpKernel& kernel, const torch::Tensor& x, const torch::Tensor& y,
                                             const torch::Tensor& noise_var) {
  const int64_t n = x.size(0);
  auto K = kernel(x, x) + noise_var * at::eye(n, x.options());
  auto L = at::linalg_cholesky(K);
  auto z = at::linalg_solve_triangular(L, y.view({n, 1}), /*upper=*/false);
  return 0.5 * z.pow(2).sum() + L.diagonal().log().sum() + 0.5 * n * std::log(2 * M_PI);
}

GpPosterior::GpPosterior(torch::Tensor x, torch::Tensor y, GpKernel kernel, double noise_var)
    : x_(x.detach().to(at::kDouble)), y_(y.detach().to(at::kDouble)), kernel_(std::move(kernel)), noise_var_(noise_var) {
  if (x_.dim() != 2 || y_.dim() != 1 || x_.size(0) != y_.size(0))
    throw InvalidArgument(fmt::format("gp: inputs must be [N, D] and targets [N]; got {} and {} dimensions", x_.dim(), y_.dim()));
  if (!(noise_var_ >= 0)) throw InvalidArgument(fmt::format("gp: noise variance must be >= 0, got {}", noise_var_));
  kernel_.log_amplitude = kernel_.log_amplitude.detach().to(x_.options());
  if (kernel_.log_lengthscale.defined()) kernel_.log_lengthscale = kernel_.log_lengthscale.detach().to(x_.options());
  const int64_t n = x_.size(0);
  chol_ = robust_cholesky(kernel_(x_, x_) + noise_var_ * at::eye(n, x_.options()));
  alpha_ = at::cholesky_solve(y_.view({n, 1}), chol_).view({n});
}

torch::Tensor GpPosterior::sample(int64_t, uint64_t) const {
  throw NotSupported("a GP posterior has no weight vectors to sample; use its predictive (or function draws)");
}

std::pair<torch::Tensor, torch::Tensor> GpPosterior::latent(const torch::Tensor& x) const {
  auto xd = x.detach().to(x_.device(), at::kDouble).flatten(1);
  auto Ks = kernel_(x_, xd);  // [N, M]
  auto V = at::linalg_solve_triangular(chol_, Ks, /*upper=*/false);
  return {Ks.t().mv(alpha_), kernel_(xd, xd) - V.t().mm(V)};
}

torch::Tensor GpPosterior::function_draws(const torch::Tensor& x, int64_t n, uint64_t seed) const {
  auto [mean, cov] = latent(x);
  auto L = robust_cholesky(cov + 1e-10 * at::eye(cov.size(0), cov.options()));
  auto z = keyed_randn({n, mean.size(0)}, rng_key(seed, Stream::Sample), mean.options());
  return mean + z.mm(L.t());
}

Predictive GpPosterior::predict(const Model&, const Likelihood&, const torch::Tensor& x, double y_mean, double y_std,
                                const PredictOptions& options) const {
  auto xd = x.detach().to(x_.device(), at::kDouble).flatten(1);
  if (xd.size(1) != x_.size(1))
    throw InvalidArgument(fmt::format("gp: inputs have {} features; the GP was fitted on {}", xd.size(1), x_.size(1)));
  Predictive p;
  p.task = Task::Regression;
  std::vector<torch::Tensor> means, vars;
  for (int64_t start = 0; start < xd.size(0); start += options.batch_size) {
    auto chunk = xd.narrow(0, start, std::min(options.batch_size, xd.size(0) - start));
    auto Ks = kernel_(x_, chunk);
    auto V = at::linalg_solve_triangular(chol_, Ks, /*upper=*/false);
    means.push_back(Ks.t().mv(alpha_));
    vars.push_back((kernel_.diag(chunk) - V.pow(2).sum(0)).clamp_min(0) + noise_var_);
  }
  auto dtype = x.scalar_type();
  p.mean = (at::cat(means) * y_std + y_mean).to(x.device(), dtype);
  p.var = (at::cat(vars) * (y_std * y_std)).to(x.device(), dtype);
  return p;
}

double GpPosterior::log_marginal_likelihood() const {
  const int64_t n = x_.size(0);
  return -(0.5 * y_.dot(alpha_) + chol_.diagonal().log().sum() + 0.5 * n * std::log(2 * M_PI)).item<double>();
}

void GpPosterior::save(TensorMap& tensors, nlohmann::json& meta) const {
  tensors["posterior.gp_x"] = x_;
  tensors["posterior.gp_y"] = y_;
  tensors["posterior.gp_log_amplitude"] = kernel_.log_amplitude;
  if (kernel_.log_lengthscale.defined()) tensors["posterior.gp_log_lengthscale"] = kernel_.log_lengthscale;
  meta["gp_kernel"] = to_string(kernel_.kind);
  meta["gp_noise_var"] = noise_var_;
}

std::unique_ptr<GpPosterior> GpPosterior::load(const TensorMap& tensors, const nlohmann::json& meta) {
  auto get = [&](const std::string& name) { return posterior_tensor(tensors, name); };
  GpKernel kernel;
  kernel.kind = parse_gp_kernel(meta.at("gp_kernel").get<std::string>());
  kernel.log_amplitude = get("posterior.gp_log_amplitude");
  if (tensors.count("posterior.gp_log_lengthscale")) kernel.log_lengthscale = get("posterior.gp_log_lengthscale");
  return std::make_unique<GpPosterior>(get("posterior.gp_x"), get("posterior.gp_y"), kernel,
                                       meta.at("gp_noise_var").get<double>());
}

}  // namespace credence
