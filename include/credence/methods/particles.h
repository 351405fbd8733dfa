#pragma once
/// Interacting particles: Stein variational gradient descent and repulsive deep ensembles.
#include "credence/methods/method.h"

namespace credence {

/// `svgd`: Stein variational gradient descent in weight space (RBF kernel, median bandwidth).
MethodInfo svgd_method_info();
/// `repulsive:space=weight|function`: deep ensembles with a kernel-density repulsion between
/// members (D'Angelo & Fortuin 2021), measured on the weights or on the network outputs.
MethodInfo repulsive_method_info();

/// The RBF kernel matrix [M, M] between the rows of `points` [M, D], exp(-|a - b|^2 / h), and its
/// bandwidth h: `bandwidth` when > 0, else the median heuristic median(|a - b|^2) / log(M + 1).
std::pair<torch::Tensor, double> rbf_kernel(const torch::Tensor& points, double bandwidth = 0.0);
/// SVGD's update direction for particles [M, D] with log-density gradients [M, D]:
/// phi_i = mean_j [k(x_j, x_i) grad_log_p_j + grad_{x_j} k(x_j, x_i)].
torch::Tensor stein_direction(const torch::Tensor& points, const torch::Tensor& grad_log_p, double bandwidth = 0.0);
/// The repulsion of a kernel density estimate, -grad_i log sum_j k(x_i, x_j), for points [M, D].
torch::Tensor kde_repulsion(const torch::Tensor& points, double bandwidth = 0.0);

}  // namespace credence
