#include "credence/eval/metrics.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <cmath>

#include "credence/core/error.h"
#include "inputs.h"

// Every metric computes in float64 on the device of the predictive, and returns a host double.
namespace credence {

using namespace eval_detail;

namespace {

const double kLog2Pi = std::log(2.0 * 3.14159265358979323846);

}  // namespace

double accuracy(const Predictive& p, const torch::Tensor& y) {
  auto [probs, labels] = classification_inputs(p, y, "accuracy");
  return probs.argmax(1).eq(labels).to(at::kDouble).mean().item<double>();
}

double classification_nll(const Predictive& p, const torch::Tensor& y) {
  auto [probs, labels] = classification_inputs(p, y, "classification_nll");
  torch::Tensor py = probs.gather(1, labels.unsqueeze(1)).squeeze(1);
  return -py.clamp_min(kProbFloor).log().mean().item<double>();
}

double ece(const Predictive& p, const torch::Tensor& y, int bins) {
  if (bins < 1) throw InvalidArgument(fmt::format("ece: bins must be >= 1, got {}", bins));
  auto [probs, labels] = classification_inputs(p, y, "ece");
  auto [conf, pred] = probs.max(1);
  torch::Tensor correct = pred.eq(labels).to(at::kDouble);
  // Right-closed bins (b/B, (b+1)/B], with 0 in the first: the bin index is the number of
  // interior boundaries strictly below the confidence.
  torch::Tensor boundaries =
      at::arange(1, bins, at::TensorOptions().dtype(at::kDouble).device(conf.device())) /
      static_cast<double>(bins);
  torch::Tensor bin = at::bucketize(conf, boundaries, /*out_int32=*/false, /*right=*/false);
  auto opts = conf.options();
  torch::Tensor conf_sum = at::zeros({bins}, opts).index_add_(0, bin, conf);
  torch::Tensor acc_sum = at::zeros({bins}, opts).index_add_(0, bin, correct);
  // sum_b (n_b / N) |acc_b - conf_b| = sum_b |acc_sum_b - conf_sum_b| / N
  return ((acc_sum - conf_sum).abs().sum() / static_cast<double>(conf.size(0))).item<double>();
}

double brier(const Predictive& p, const torch::Tensor& y) {
  auto [probs, labels] = classification_inputs(p, y, "brier");
  torch::Tensor onehot = at::zeros_like(probs).scatter_(1, labels.unsqueeze(1), 1.0);
  return (probs - onehot).pow(2).sum(1).mean().item<double>();
}

double rmse(const Predictive& p, const torch::Tensor& y) {
  torch::Tensor mu = point_mean(p, "rmse");
  torch::Tensor yd = regression_targets(y, mu.size(0), mu.device(), "rmse");
  return (mu - yd).pow(2).mean().sqrt().item<double>();
}

double regression_nll(const Predictive& p, const torch::Tensor& y) {
  Mixture m = regression_mixture(p, "regression_nll");
  torch::Tensor yd = regression_targets(y, m.mean.size(1), m.mean.device(), "regression_nll");
  torch::Tensor log_pdf = -0.5 * (kLog2Pi + m.var.log() + (yd.unsqueeze(0) - m.mean).pow(2) / m.var);
  torch::Tensor log_mix = at::logsumexp(log_pdf + m.w.log().unsqueeze(1), 0);
  return -log_mix.mean().item<double>();
}

torch::Tensor predictive_quantile(const Predictive& p, double q) {
  require_probability(q, "predictive_quantile", "the quantile level q");
  return mixture_quantile(regression_mixture(p, "predictive_quantile"), q);
}

double coverage(const Predictive& p, const torch::Tensor& y, double level) {
  require_probability(level, "coverage", "the interval level");
  Mixture m = regression_mixture(p, "coverage");
  torch::Tensor yd = regression_targets(y, m.mean.size(1), m.mean.device(), "coverage");
  torch::Tensor lo = mixture_quantile(m, 0.5 * (1.0 - level));
  torch::Tensor hi = mixture_quantile(m, 0.5 * (1.0 + level));
  return ((yd >= lo) & (yd <= hi)).to(at::kDouble).mean().item<double>();
}

double nll(const Predictive& p, const torch::Tensor& y) {
  return p.task == Task::Classification ? classification_nll(p, y) : regression_nll(p, y);
}

std::map<std::string, double> standard_metrics(const Predictive& p, const torch::Tensor& y,
                                               int ece_bins) {
  if (p.task == Task::Classification)
    return {{"accuracy", accuracy(p, y)},
            {"nll", nll(p, y)},
            {"ece", ece(p, y, ece_bins)},
            {"brier", brier(p, y)}};
  return {{"rmse", rmse(p, y)}, {"nll", nll(p, y)}, {"coverage_90", coverage(p, y, 0.9)}};
}

}  // namespace credence
