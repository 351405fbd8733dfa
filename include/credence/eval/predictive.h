#pragma once
/// The predictive distribution a posterior produces: plain data, consumed by metrics,
/// decisions, conformal sets and reports. Regression values are in original target units.
#include <torch/types.h>

#include "credence/data/dataset.h"

namespace credence {

struct Predictive {
  Task task = Task::Regression;

  // Classification
  torch::Tensor probs;         ///< [N, C] model-averaged class probabilities
  torch::Tensor sample_probs;  ///< [S, N, C] per-sample probabilities, or undefined

  // Regression: a mixture of S Gaussians per point (S = 1 for a single Gaussian)
  torch::Tensor mean;          ///< [N] predictive mean (mixture mean)
  torch::Tensor var;           ///< [N] total predictive variance (law of total variance)
  torch::Tensor sample_mean;   ///< [S, N] component means, or undefined (then N(mean, var))
  torch::Tensor sample_var;    ///< [S, N] component variances (aleatoric of each component)

  torch::Tensor weights;       ///< [S] component weights summing to 1, or undefined (uniform)

  int64_t size() const;
  /// Number of components/samples kept (1 when only the moments are stored).
  int64_t num_samples() const;
  Predictive to(torch::Device device) const;
};

}  // namespace credence
