#pragma once
// IVON's per-step arithmetic over the P parameters, as tensor ops (any device) or as single
// fused passes on the CPU: there, a chain of ~20 elementwise tensor ops over P costs more than
// the network's own forward and backward at Fashion-MNIST sizes.
#include <torch/types.h>

namespace credence::ivon {

struct Hyper {
  double beta1 = 0.9, beta2 = 0.99999, lambda = 1, lr = 0.1, clip = 0;
  int64_t step = 1;  ///< t, counted from 1 (bias correction of the momentum)
};

/// sigma = 1 / sqrt(lambda (h + delta)) [P]; theta = m + sigma * eps for eps [S, P].
void sample(const torch::Tensor& m, const torch::Tensor& h, const torch::Tensor& delta, double lambda,
            const torch::Tensor& eps, torch::Tensor& sigma, torch::Tensor& theta, bool fused);

/// From per-sample gradients grad [S, P] at theta = m + sigma * eps: ghat = mean grad,
/// hhat = mean grad * eps / sigma; then g, h and m (all [P]) in place, under the prior
/// N(prior_mean, 1 / (N delta)) (prior_mean undefined: zero). Returns 0.5 sum(delta (m - prior_mean)^2).
double update(torch::Tensor& m, torch::Tensor& h, torch::Tensor& g, const torch::Tensor& delta,
              const torch::Tensor& prior_mean, const torch::Tensor& grad, const torch::Tensor& eps, const torch::Tensor& sigma, const Hyper& hyper,
              bool fused);

/// Whether the fused CPU passes apply to these tensors.
bool can_fuse(const torch::Tensor& m);

}  // namespace credence::ivon
