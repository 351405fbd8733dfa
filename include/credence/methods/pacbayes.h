#pragma once
/// PAC-Bayes training (Pérez-Ortiz et al. 2021): a diagonal Gaussian posterior that minimizes a
/// PAC-Bayes bound on the bounded cross-entropy, against a Gaussian prior centred either at the
/// initialization or at a MAP fit on a held-out part of the training set. The fitted posterior
/// carries its prior, so `credence bound` can certify it on the rows that prior never saw.
#include <torch/types.h>

#include "credence/methods/method.h"

namespace credence {

MethodInfo pacbayes_method_info();

/// The training objective as a differentiable function of the empirical risk `risk` in [0, 1]
/// and KL (tensors), for `bound` = classic, quad or lambda (lambda set in closed form per step).
torch::Tensor pacbayes_objective(const std::string& bound, const torch::Tensor& risk, const torch::Tensor& kl,
                                 int64_t n, double delta);

}  // namespace credence
