#pragma once
/// Gaussian priors on the flat parameter vector: isotropic or one precision per layer.
#include <torch/types.h>

#include <string>
#include <vector>

#include "credence/model/model.h"

namespace credence {

struct GaussianPrior {
  torch::Tensor precision;  ///< [P], one precision per parameter (expanded from groups)
  std::vector<double> layer_precisions;  ///< as given: one value, or one per layer

  static GaussianPrior isotropic(double precision, const Model& model);
  /// One precision per parametric layer (weights and bias of a layer share it).
  static GaussianPrior per_layer(const std::vector<double>& precisions, const Model& model);
  /// "30" (isotropic) or "1,2,3" (one per layer).
  static GaussianPrior parse(const std::string& text, const Model& model);

  /// 0.5 * sum precision * theta^2 (the negative log density up to a constant), for [P] -> scalar
  /// or [S, P] -> [S].
  torch::Tensor neg_log_prob(const torch::Tensor& theta) const;
  /// Adds `scale` * d/dtheta neg_log_prob to `grad` in place (outside autograd, which would cost a
  /// graph per step) and returns `scale` * neg_log_prob(theta), summed over rows for theta [S, P].
  double add_grad(const torch::Tensor& theta, torch::Tensor& grad, double scale) const;
  std::string describe() const;
};

}  // namespace credence
