#pragma once
/// Predictive metrics, free functions over a Predictive and the true targets.
#include <map>
#include <string>

#include "credence/eval/predictive.h"

namespace credence {

// Classification (y: int64 [N])
double accuracy(const Predictive& p, const torch::Tensor& y);
/// Mean negative log predictive probability of the true class.
double classification_nll(const Predictive& p, const torch::Tensor& y);
/// Expected calibration error with `bins` equal-width confidence bins (top-label).
double ece(const Predictive& p, const torch::Tensor& y, int bins = 15);
/// Mean over examples of sum_c (p_c - 1[c = y])^2, in [0, 2].
double brier(const Predictive& p, const torch::Tensor& y);

// Regression (y: floating [N], original units)
double rmse(const Predictive& p, const torch::Tensor& y);
/// Mean negative log density of y under the predictive mixture (log-mean-exp over components).
double regression_nll(const Predictive& p, const torch::Tensor& y);
/// Quantile `q` in (0, 1) of each point's predictive mixture: [N].
torch::Tensor predictive_quantile(const Predictive& p, double q);
/// Fraction of y inside the central `level` interval of each predictive mixture.
double coverage(const Predictive& p, const torch::Tensor& y, double level);

/// The NLL for the predictive's task: classification_nll or regression_nll.
double nll(const Predictive& p, const torch::Tensor& y);

/// The standard metrics for the task, keyed as in `--json` output:
/// classification: accuracy, nll, ece, brier; regression: rmse, nll, coverage_90.
std::map<std::string, double> standard_metrics(const Predictive& p, const torch::Tensor& y,
                                               int ece_bins = 15);

}  // namespace credence
