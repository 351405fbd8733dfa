#pragma once
/// A Gaussian-process prior over the network's outputs (`--prior gp:KERNEL?...`), for the methods
/// that can use a prior over functions rather than weights (vi): its KL term is taken between the
/// linearized network's Gaussian push-forward and the GP at context points (Rudner et al. 2022).
#include <torch/types.h>

#include <string>

#include "credence/data/dataset.h"
#include "credence/model/model.h"

namespace credence {

struct FunctionPrior {
  std::string spec;
  std::string kernel = "rbf";   ///< rbf, matern52 or linear (a^2 (x.x' + 1))
  double lengthscale = 1.0;     ///< in standardized input units
  double amplitude = 1.0;       ///< prior std of each output, in standardized target units
  /// lengthscale=auto: length scales (one per input) and amplitude by a GP's evidence on the
  /// training data, set in `ard_log_lengthscale` and `amplitude` before fitting (regression).
  bool from_evidence = false;
  torch::Tensor ard_log_lengthscale;  ///< [D], when set: used instead of `lengthscale`
  int64_t points = 32;          ///< context points per step
  std::string context = "box";  ///< box: uniform in the inputs' box widened by `margin` x its range on each side,
                                ///< fresh each step; train: the first `points` training rows
  double margin = 0.5;
  double jitter = 1e-4;         ///< added to both covariances' diagonals

  /// gp:KERNEL[?lengthscale=L|auto&amplitude=A&points=M&context=box|train&margin=F&jitter=J];
  /// InvalidArgument naming the problem.
  static FunctionPrior parse(const std::string& spec);
  /// Context points [M, D] for one step, from standardized training inputs [N, D].
  torch::Tensor context_points(const torch::Tensor& train_x, uint64_t key) const;
  /// KL(N(f(xc; mean), J diag(var) J^T) || N(0, K(xc, xc))) summed over outputs (each output an
  /// independent GP), with J the Jacobian of the outputs at `mean`, held fixed. Differentiable in
  /// `mean` (through f) and `var`.
  torch::Tensor kl(const Model& model, const torch::Tensor& mean, const torch::Tensor& var,
                   const torch::Tensor& xc) const;
};

/// Whether a --prior spec is a prior over functions (gp:...).
inline bool is_function_prior_spec(const std::string& spec) { return spec.rfind("gp:", 0) == 0; }

}  // namespace credence
