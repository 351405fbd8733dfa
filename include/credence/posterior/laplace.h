#pragma once
/// The Laplace posterior: a Gaussian around the MAP over a parameter subset, with precision
/// curvature / (temperature * sigma^p) + prior precision, held in the curvature's structure
/// (eigendecomposed Kronecker factors, a diagonal, or a Cholesky factor) so that log-determinants,
/// sampling, prior changes and the linearized (GLM) predictive stay cheap.
#include "credence/curvature/curvature.h"
#include "credence/posterior/posterior.h"

namespace credence {

enum class LaplacePredictive { GLM, NN };
/// How the classification GLM predictive maps N(f_mu, f_var) to probabilities.
enum class GlmLink { Probit, Bridge, MC };
GlmLink parse_glm_link(const std::string& name);
const char* to_string(GlmLink link);

/// The linearized predictive from the network's outputs mu [n, C] at the mode and their variance
/// under the posterior: var [n, C] (regression, and classification with the probit or bridge
/// link) or [n, C, C] (the MC link); `sigma` is a Gaussian's noise (standardized units).
Predictive glm_predictive(const torch::Tensor& mu, const torch::Tensor& var, const Likelihood& likelihood, GlmLink link,
                          double sigma, double y_mean, double y_std, const PredictOptions& options);

class LaplacePosterior : public Posterior {
 public:
  /// `prior_precision` [K] over the subset (constant within each layer's weight and bias for kron).
  LaplacePosterior(torch::Tensor theta, ParamSubset subset, Curvature curvature, torch::Tensor prior_precision,
                   double sigma, double temperature);

  std::string kind() const override { return "laplace"; }
  torch::Tensor sample(int64_t n, uint64_t seed) const override;
  Predictive predict(const Model& model, const Likelihood& likelihood, const torch::Tensor& x, double y_mean,
                     double y_std, const PredictOptions& options) const override;
  void save(TensorMap& tensors, nlohmann::json& meta) const override;
  static std::unique_ptr<LaplacePosterior> load(const TensorMap& tensors, const nlohmann::json& meta,
                                                const Model& model);

  /// The prior's mean over the subset [K] (undefined: zero). It moves only the evidence: the
  /// posterior stays centred on theta, the mode found under that prior.
  void set_prior_mean(const torch::Tensor& mean);
  /// Changes the prior precision (scalar or [K]) and noise std, refreshing the factorization.
  void set_hyper(const torch::Tensor& prior_precision, double sigma);
  /// The log marginal likelihood as a differentiable function of log prior precision (scalar or
  /// one per subset layer, or one per subset entry) and log sigma (ignored unless the Gaussian likelihood).
  torch::Tensor log_marginal_likelihood(const torch::Tensor& log_prior, const torch::Tensor& log_sigma) const;
  /// At the current hyper-parameters.
  double log_marginal_likelihood() const;
  double log_likelihood() const;
  double log_det_precision() const;
  double log_det_prior() const;
  double scatter() const;
  /// The posterior variance of each subset entry, diag(P^-1) [K], in the curvature's structure.
  torch::Tensor marginal_variance() const;
  /// The posterior precision as a dense [K, K] matrix (tests, small subsets).
  torch::Tensor precision_dense() const;
  /// Function-space covariance J Sigma J^T at x: [n, C, C], or its diagonal [n, C].
  torch::Tensor function_variance(const Model& model, const torch::Tensor& x, bool diag_only,
                                  torch::Tensor* f_mu = nullptr) const;

  LaplacePredictive predictive_type = LaplacePredictive::GLM;
  GlmLink link = GlmLink::Probit;
  const ParamSubset& subset() const { return subset_; }
  const Curvature& curvature() const { return curvature_; }
  const torch::Tensor& prior_precision() const { return prior_; }
  double sigma() const { return sigma_; }
  const torch::Tensor& theta() const { return theta_; }

 private:
  /// function_variance on one slice of rows; adds the bytes its layer factors took to `bytes`.
  torch::Tensor slice_variance(const Model& model, const torch::Tensor& x, bool diag_only, torch::Tensor* f_mu,
                               double* bytes) const;

  double curvature_scale(double sigma) const;
  torch::Tensor block_prior(const torch::Tensor& prior, int64_t offset) const;
  void factorize();
  torch::Tensor theta_, theta_sub_;
  ParamSubset subset_;
  Curvature curvature_;
  torch::Tensor prior_;  ///< [K]
  torch::Tensor prior_mean_;  ///< [K], or undefined for zero
  torch::Tensor offset_from_prior_mean() const;  ///< theta - prior mean over the subset
  double sigma_, temperature_;
  // Factorization at the current hyper-parameters.
  std::vector<torch::Tensor> eig_a_, vec_a_, eig_b_, vec_b_, block_d_;  ///< Kron: per block
  std::vector<torch::Tensor> block_var_t_;  ///< Kron: 1 / block_d_, transposed [in, out] (the predictive's)
  std::vector<bool> shares_a_;              ///< Kron: block i has block i - 1's output factor
  torch::Tensor diag_p_;            ///< Diag: posterior precision [K]
  torch::Tensor chol_, cov_;        ///< Full: Cholesky factor of P, and P^{-1}
  /// Full over one whole dense layer: P^{-1} as [out, out, in + 1, in + 1] blocks (the last entry
  /// of in + 1 is the bias), so J P^{-1} J^T needs no per-example Jacobian rows.
  torch::Tensor cov_blocks_;
  torch::Tensor layer_blocks(const torch::Tensor& m) const;
  torch::Tensor eig_h_;             ///< Full: eigenvalues of full_psd_ (cheap marglik)
  torch::Tensor full_psd_;          ///< Full: the curvature lifted past its round-off negative eigenvalues (float64)
  /// LowRank: P = D^{1/2} (I + W W^T) D^{1/2} with D the prior and W = D^{-1/2} U (s Lambda)^{1/2};
  /// W = Q S R^T keeps Q [K, r] and S^2 [r].
  torch::Tensor lr_q_, lr_s2_;
  /// LowRank: W for prior `delta` [K] and curvature scale `s` (differentiable).
  torch::Tensor lowrank_w(const torch::Tensor& delta, const torch::Tensor& s) const;
};

}  // namespace credence
