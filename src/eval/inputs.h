#pragma once
/// Internal to src/eval: a Predictive and targets validated and converted to float64, shared by
/// every metric so that each reports bad input the same way (InvalidArgument naming `fn`).
#include <ATen/ATen.h>

#include <string>
#include <utility>

#include "credence/eval/predictive.h"

namespace credence::eval_detail {

constexpr double kProbFloor = 1e-12;

const char* task_name(Task task);
void require_task(const Predictive& p, Task want, const char* fn);
std::string shape_of(const torch::Tensor& t);
void require_finite(const torch::Tensor& t, const char* fn, const char* what);
/// `v` strictly inside (0, 1).
void require_probability(double v, const char* fn, const char* what);

/// Mixture weights as float64 [S] summing to 1 (uniform when `w` is undefined).
torch::Tensor mixture_weights(const torch::Tensor& w, int64_t S, torch::Device device, const char* fn);

/// Model-averaged class probabilities [N, C] float64, validated (no labels needed).
torch::Tensor class_probs(const Predictive& p, const char* fn);
/// Labels as int64 [N] on `device`, checked against N and C.
torch::Tensor class_labels(const torch::Tensor& y, int64_t N, int64_t C, torch::Device device,
                           const char* fn);
/// Both of the above.
std::pair<torch::Tensor, torch::Tensor> classification_inputs(const Predictive& p, const torch::Tensor& y,
                                                              const char* fn);

/// Regression predictive as a mixture: means and variances float64 [S, N], weights [S].
struct Mixture {
  torch::Tensor mean, var, w;
};
Mixture regression_mixture(const Predictive& p, const char* fn);
/// Point prediction [N] float64: the stored mean, or the mixture mean.
torch::Tensor point_mean(const Predictive& p, const char* fn);
/// Regression targets as float64 [N] on `device`, validated.
torch::Tensor regression_targets(const torch::Tensor& y, int64_t N, torch::Device device, const char* fn);

torch::Tensor normal_cdf(const torch::Tensor& z);
/// Mixture CDF at y [N]: sum_s w_s Phi((y - mean_s) / sd_s).
torch::Tensor mixture_cdf(const Mixture& m, const torch::Tensor& y);
/// Quantile q of each point's mixture [N] (bisection between component quantiles).
torch::Tensor mixture_quantile(const Mixture& m, double q);

}  // namespace credence::eval_detail
