#pragma once
/// Observation models: how network outputs explain targets, and how they become a Predictive.
#include <string>

#include "credence/data/dataset.h"
#include "credence/eval/predictive.h"

namespace credence {

enum class LikelihoodKind {
  Gaussian,         ///< homoscedastic noise, fixed or learned (one output)
  Heteroscedastic,  ///< a mean-and-variance head (two outputs: mean, softplus variance)
  Categorical,      ///< softmax over C outputs
  Bernoulli         ///< one logit for two classes
};

struct Likelihood {
  LikelihoodKind kind = LikelihoodKind::Gaussian;
  double sigma = 1.0;       ///< Gaussian noise std, in standardized target units
  bool learn_sigma = true;  ///< whether fitting may change sigma

  /// `name` is gaussian, gaussian?sigma=S (fixed), heteroscedastic, categorical, bernoulli, or ""
  /// for the task's default (learned-noise Gaussian or categorical). Checks it suits the data.
  static Likelihood parse(const std::string& name, const Dataset& data);
  std::string name() const;
  Task task() const;
  /// Network outputs this likelihood reads for `data`.
  int64_t output_dim(const Dataset& data) const;

  /// Summed negative log-likelihood of targets `y` (standardized units) given outputs [N, O].
  /// `log_sigma` (a scalar tensor) overrides sigma for the Gaussian, so it can be learned.
  torch::Tensor nll(const torch::Tensor& out, const torch::Tensor& y,
                    const torch::Tensor& log_sigma = {}) const;
  /// nll() for outputs [N, O] and targets [N] with its gradient written out, no autograd: with
  /// respect to the outputs into `d_out` (reallocated unless it has their shape, so a caller can
  /// reuse it) and, for the Gaussian, with respect to `log_sigma` into `*d_log_sigma`. The
  /// Gaussian reads its noise level from `log_sigma`; the others ignore it. For samplers' loops.
  double nll_and_grad(const torch::Tensor& out, const torch::Tensor& y, double log_sigma,
                      torch::Tensor& d_out, double* d_log_sigma = nullptr) const;
  /// Per-sample summed NLL for stacked outputs [S, N, O] and targets [N] (shared) or [S, N]: [S].
  torch::Tensor nll_stacked(const torch::Tensor& out, const torch::Tensor& y,
                            const torch::Tensor& log_sigma = {}) const;
  /// The predictive of stacked outputs [S, N, O] with component `weights` [S] (undefined:
  /// uniform), in original target units.
  /// `sample_sigma` [S], when given, is each sample's Gaussian noise level (standardized units).
  Predictive predictive(const torch::Tensor& out, double y_mean, double y_std,
                        const torch::Tensor& weights = {}, const torch::Tensor& sample_sigma = {}) const;
};

}  // namespace credence
