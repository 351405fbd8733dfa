#pragma once
/// The functional Laplace posterior: the linearized network as a Gaussian process whose kernel is
/// its tangent kernel under the weight prior, k(x, x') = J(x) P^-1 J(x')^T, conditioned on M
/// inducing rows of the training data (their likelihood curvature scaled by N / M). With M = N it
/// is exactly the weight-space Laplace posterior's GLM predictive (Woodbury); its cost is
/// O(M^3) in the outputs instead of O(K^3) in the weights.
#include "credence/model/subset.h"
#include "credence/posterior/laplace.h"

namespace credence {

/// Jacobian of the outputs in the subset's entries at x: [n, C, K] (from the per-layer factors).
torch::Tensor output_jacobian(const Model& model, const ParamSubset& subset, const torch::Tensor& theta,
                              const torch::Tensor& x, torch::Tensor* outputs = nullptr);

class FunctionalLaplacePosterior : public Posterior {
 public:
  /// `prior_precision` [K] over the subset; `inducing` [M, ...] standardized inputs; `factors`
  /// [M, C, D] with factors L L^T = each inducing row's likelihood Hessian in the outputs, already
  /// scaled (N / M, 1 / temperature, and the Gaussian noise).
  FunctionalLaplacePosterior(const Model& model, torch::Tensor theta, ParamSubset subset,
                             torch::Tensor prior_precision, torch::Tensor inducing, torch::Tensor factors,
                             double sigma);
  std::string kind() const override { return "functional_laplace"; }
  /// Weight draws are not part of this posterior: NotSupported naming hessian=full instead.
  torch::Tensor sample(int64_t n, uint64_t seed) const override;
  Predictive predict(const Model& model, const Likelihood& likelihood, const torch::Tensor& x, double y_mean,
                     double y_std, const PredictOptions& options) const override;
  /// J Sigma J^T at x: [n, C] (diag_only) or [n, C, C]; the outputs at the mode go to f_mu.
  torch::Tensor function_variance(const Model& model, const torch::Tensor& x, bool diag_only,
                                  torch::Tensor* f_mu = nullptr) const;
  void save(TensorMap& tensors, nlohmann::json& meta) const override;
  static std::unique_ptr<FunctionalLaplacePosterior> load(const TensorMap& tensors, const nlohmann::json& meta,
                                                          const Model& model);
  GlmLink link = GlmLink::Probit;
  const torch::Tensor& theta() const { return theta_; }
  int64_t inducing_points() const { return inducing_.size(0); }

 private:
  torch::Tensor theta_;
  ParamSubset subset_;
  torch::Tensor prior_var_;  ///< [K], 1 / prior precision
  torch::Tensor inducing_, factors_;
  double sigma_;
  torch::Tensor w_;     ///< [K, M D]: P^-1 G^T with G = L^T J at the inducing rows
  torch::Tensor chol_;  ///< [M D, M D]: Cholesky factor of I + G P^-1 G^T (float64)
};

}  // namespace credence
