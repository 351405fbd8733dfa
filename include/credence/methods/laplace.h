#pragma once
/// Laplace approximations around a MAP fit: subsets, structures and curvatures as options of one
/// method, with marginal-likelihood prior (and noise) tuning and GLM or sampled predictives.
#include "credence/methods/method.h"

namespace credence {

MethodInfo laplace_method_info();

class LaplacePosterior;
/// Maximizes the Laplace log marginal likelihood over the prior precision (one value, or one per
/// layer when `per_layer`) and, when `tune_sigma`, the Gaussian noise std. Updates `posterior`.
void optimize_marglik(LaplacePosterior& posterior, bool per_layer, bool tune_sigma);

}  // namespace credence
