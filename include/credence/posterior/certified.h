#pragma once
/// A diagonal Gaussian posterior that carries the Gaussian prior it is certified against, and a
/// PAC-Bayes risk certificate for its stochastic network on data that prior never saw.
#include <nlohmann/json.hpp>

#include "credence/data/dataset.h"
#include "credence/posterior/posterior.h"

namespace credence {

class CertifiedGaussianPosterior : public GaussianPosterior {
 public:
  /// Prior N(prior_mean, prior_std^2 I). `prior_rows`: rows of the fit's training data the prior
  /// was learned on (int64 [K]; empty for a prior chosen without data).
  CertifiedGaussianPosterior(torch::Tensor mean, torch::Tensor variance, torch::Tensor prior_mean,
                             double prior_std, torch::Tensor prior_rows);
  /// Prior N(prior_mean, diag(prior_variance)), e.g. one learned on other tasks.
  CertifiedGaussianPosterior(torch::Tensor mean, torch::Tensor variance, torch::Tensor prior_mean,
                             torch::Tensor prior_variance, torch::Tensor prior_rows);
  std::string kind() const override { return "certified_gaussian"; }
  void save(TensorMap& tensors, nlohmann::json& meta) const override;
  static std::unique_ptr<CertifiedGaussianPosterior> load(const TensorMap& tensors, const nlohmann::json& meta);

  const torch::Tensor& prior_mean() const { return prior_mean_; }
  /// The prior's standard deviation: its one value, or the root mean prior variance of a diagonal
  /// prior.
  double prior_std() const { return prior_std_; }
  /// [P] for a diagonal prior; undefined for an isotropic one.
  const torch::Tensor& prior_variance() const { return prior_variance_; }
  const torch::Tensor& prior_rows() const { return prior_rows_; }
  /// KL(Q || P) in closed form.
  double kl() const;
  /// Of the fit's own training rows `train` (`n_fit` of them when fitted), those the prior never
  /// saw: all of them for a prior chosen without data. DataError when `train` no longer has
  /// `n_fit` rows, since the prior's row indices would then name other rows.
  Dataset unseen_rows(const Dataset& train, int64_t n_fit) const;

 private:
  torch::Tensor prior_mean_, prior_rows_, prior_variance_;
  double prior_std_;
};

/// The bounded cross-entropy floor a fit used: its method option `pmin` (default 1e-4), from the
/// fit's info (`FittedModel::info`).
double fitted_pmin(const nlohmann::json& fit_info);

/// KL(N(mean, diag(variance)) || N(prior_mean, prior_std^2 I)) in closed form, differentiable.
torch::Tensor kl_to_isotropic_gaussian(const torch::Tensor& mean, const torch::Tensor& variance,
                                       const torch::Tensor& prior_mean, double prior_std);
/// KL(N(mean, diag(variance)) || N(prior_mean, diag(prior_variance))), differentiable.
torch::Tensor kl_to_diagonal_gaussian(const torch::Tensor& mean, const torch::Tensor& variance,
                                      const torch::Tensor& prior_mean, const torch::Tensor& prior_variance);

/// -log(max(p_y, pmin)) / log(1 / pmin): the cross-entropy clipped and scaled into [0, 1].
torch::Tensor bounded_cross_entropy(const torch::Tensor& logits, const torch::Tensor& y, double pmin);

/// Losses of the stochastic network on labelled rows: every row, in each of `rounds` passes,
/// meets its own independent network from N(mean, sd^2), so the rounds * N losses are independent
/// and their mean estimates the empirical risk with rounds * N sampled networks.
struct StochasticRisk {
  double error = 0, cross_entropy = 0;  ///< mean 0-1 error and bounded cross-entropy
  int64_t networks = 0;
};
StochasticRisk stochastic_risk(const Model& model, const torch::Tensor& mean, const torch::Tensor& sd,
                               const torch::Tensor& x, const torch::Tensor& y, int64_t rounds, double pmin,
                               uint64_t seed);

struct CertifyOptions {
  double delta = 0.025;       ///< confidence of the PAC-Bayes bound
  double delta_mc = 0.01;     ///< confidence of the sampled empirical risk
  int64_t networks = 10000;   ///< at least this many sampled networks (whole passes over the rows)
  double pmin = 1e-4;         ///< floor of the bounded cross-entropy
  uint64_t seed = 0;
};

/// With probability >= 1 - delta - delta_mc over the n rows and the sampled networks, the
/// expected loss of the stochastic network is at most `*_bound` (kl-inverse on both terms).
struct Certificate {
  int64_t n = 0, networks = 0;
  double kl = 0, delta = 0, delta_mc = 0, pmin = 0;
  double error_estimate = 0, error_empirical_bound = 0, error_bound = 0;
  double ce_estimate = 0, ce_empirical_bound = 0, ce_bound = 0;
  nlohmann::json to_json() const;
};
/// x, y: the bound rows in the model's (standardized) units; classification logits.
Certificate certify(const CertifiedGaussianPosterior& posterior, const Model& model, const torch::Tensor& x,
                    const torch::Tensor& y, const CertifyOptions& options);

}  // namespace credence
