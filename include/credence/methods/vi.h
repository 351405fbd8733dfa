#pragma once
/// Variational inference: a Gaussian (mean-field, low-rank plus diagonal, or full) or a mixture of
/// diagonal Gaussians fitted by maximizing the ELBO with reparameterized weight samples (Bayes by
/// Backprop, Blundell et al. 2015), against the problem's zero-mean Gaussian prior.
#include <torch/types.h>

#include "credence/methods/method.h"

namespace credence {

MethodInfo vi_method_info();

/// KL(q || N(0, diag(1 / prior_precision))) in closed form, differentiable, for q = N(mean, C):
/// C = diag(sd^2).
torch::Tensor kl_diag_gaussian(const torch::Tensor& mean, const torch::Tensor& sd,
                               const torch::Tensor& prior_precision);
/// C = diag(sd^2) + U U^T with U [K, R] (log-determinant by the matrix determinant lemma).
torch::Tensor kl_lowrank_gaussian(const torch::Tensor& mean, const torch::Tensor& sd,
                                  const torch::Tensor& factor, const torch::Tensor& prior_precision);
/// C = L L^T with L [K, K] lower triangular with a positive diagonal.
torch::Tensor kl_full_gaussian(const torch::Tensor& mean, const torch::Tensor& chol,
                               const torch::Tensor& prior_precision);

}  // namespace credence
