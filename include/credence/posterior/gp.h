#pragma once
/// An exact Gaussian process over standardized inputs: the posterior of the `gp` method. It has no
/// weight vector; it predicts from its training data and kernel.
#include <memory>
#include <string>

#include "credence/posterior/posterior.h"

namespace credence {

enum class GpKernelKind { Rbf, Matern52, Linear };
GpKernelKind parse_gp_kernel(const std::string& name);
const char* to_string(GpKernelKind kind);

/// A stationary ARD kernel (one length scale per input) or the linear kernel a^2 (x.x' + 1),
/// which makes the GP Bayesian linear regression with prior precision 1 / a^2 on weights and bias.
struct GpKernel {
  GpKernelKind kind = GpKernelKind::Matern52;
  torch::Tensor log_lengthscale;  ///< [D] (unused by the linear kernel)
  torch::Tensor log_amplitude;    ///< scalar: log a
  /// k(a, b) for a [N, D] and b [M, D]: [N, M] (differentiable in the log parameters).
  torch::Tensor operator()(const torch::Tensor& a, const torch::Tensor& b) const;
  /// k(x, x) for x [N, D]: [N].
  torch::Tensor diag(const torch::Tensor& x) const;
};

/// -log N(y; 0, K + noise_var I) for inputs x [N, D] and targets y [N] (differentiable).
torch::Tensor gp_neg_log_marginal_likelihood(const GpKernel& kernel, const torch::Tensor& x, const torch::Tensor& y,
                                             const torch::Tensor& noise_var);

class GpPosterior : public Posterior {
 public:
  /// x [N, D] and y [N] standardized, computed in float64; noise_var in standardized units.
  GpPosterior(torch::Tensor x, torch::Tensor y, GpKernel kernel, double noise_var);
  std::string kind() const override { return "gp"; }
  /// A GP has no weight vectors: NotSupported naming what to use instead.
  torch::Tensor sample(int64_t n, uint64_t seed) const override;
  /// The exact Gaussian predictive (the model is not used).
  Predictive predict(const Model& model, const Likelihood& likelihood, const torch::Tensor& x, double y_mean,
                     double y_std, const PredictOptions& options) const override;
  /// Mean [M] and covariance [M, M] of the latent function at standardized inputs x [M, D].
  std::pair<torch::Tensor, torch::Tensor> latent(const torch::Tensor& x) const;
  /// `n` joint draws of the latent function at x [M, D]: [n, M], keyed by `seed`.
  torch::Tensor function_draws(const torch::Tensor& x, int64_t n, uint64_t seed) const;
  double log_marginal_likelihood() const;
  const GpKernel& kernel() const { return kernel_; }
  double noise_var() const { return noise_var_; }
  void save(TensorMap& tensors, nlohmann::json& meta) const override;
  static std::unique_ptr<GpPosterior> load(const TensorMap& tensors, const nlohmann::json& meta);

 private:
  torch::Tensor x_, y_, chol_, alpha_;
  GpKernel kernel_;
  double noise_var_;
};

}  // namespace credence
