#include "credence/eval/conformal.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <cmath>
#include <limits>

#include "credence/core/error.h"
#include "inputs.h"

namespace credence {

using namespace eval_detail;

namespace {

// Absorbs rounding in (n + 1) level and in cumulative sums (e.g. 1000 * 0.9 = 900.0000000000001).
constexpr double kSlack = 1e-9;

void require_level(double level, const char* fn) { require_probability(level, fn, "the nominal level"); }

/// Mean and std [N] of each regression predictive mixture (law of total variance).
std::pair<torch::Tensor, torch::Tensor> mean_and_std(const Predictive& p, const char* fn) {
  Mixture m = regression_mixture(p, fn);
  torch::Tensor w = m.w.unsqueeze(1);
  torch::Tensor mean = (w * m.mean).sum(0);
  torch::Tensor var = (w * (m.var + (m.mean - mean).pow(2))).sum(0);
  return {mean, var.sqrt()};
}

}  // namespace

double conformal_quantile(const torch::Tensor& scores, double level) {
  require_level(level, "conformal_quantile");
  if (!scores.defined() || scores.dim() != 1 || scores.size(0) == 0)
    throw InvalidArgument(fmt::format("conformal_quantile: scores have shape {}, expected [n], n >= 1",
                                      scores.defined() ? shape_of(scores) : "undefined"));
  torch::Tensor s = scores.detach().to(at::kCPU, at::kDouble);
  require_finite(s, "conformal_quantile", "scores");
  const int64_t n = s.size(0);
  const auto k = static_cast<int64_t>(std::ceil(static_cast<double>(n + 1) * level - kSlack));
  if (k > n) return std::numeric_limits<double>::infinity();
  return std::get<0>(s.sort())[std::max<int64_t>(k, 1) - 1].item<double>();
}

torch::Tensor set_scores(const Predictive& p, const SetScore& score) {
  if (!(score.lambda >= 0.0) || !std::isfinite(score.lambda) || score.k_reg < 0)
    throw InvalidArgument(
        fmt::format("set_scores: RAPS needs lambda >= 0 and k_reg >= 0 (e.g. 0.01 and 5), got {} and {}",
                    score.lambda, score.k_reg));
  torch::Tensor probs = class_probs(p, "set_scores");
  if (score.threshold) return 1.0 - probs;
  auto [sorted, order] = probs.sort(/*stable=*/true, /*dim=*/1, /*descending=*/true);
  torch::Tensor rank = at::arange(1, probs.size(1) + 1, probs.options());
  torch::Tensor penalty = score.lambda * (rank - static_cast<double>(score.k_reg)).clamp_min(0.0);
  torch::Tensor by_rank = sorted.cumsum(1) + penalty.unsqueeze(0);
  return at::empty_like(probs).scatter_(1, order, by_rank);
}

PredictionSets conformal_sets(const Predictive& cal, const torch::Tensor& y_cal, const Predictive& test,
                              double level, const SetScore& score) {
  require_level(level, "conformal_sets");
  torch::Tensor cal_all = set_scores(cal, score);
  torch::Tensor labels =
      class_labels(y_cal, cal_all.size(0), cal_all.size(1), cal_all.device(), "conformal_sets");
  PredictionSets sets;
  sets.threshold = conformal_quantile(cal_all.gather(1, labels.unsqueeze(1)).squeeze(1), level);
  torch::Tensor test_all = set_scores(test, score);
  if (test_all.size(1) != cal_all.size(1))
    throw InvalidArgument(fmt::format("conformal_sets: calibration has {} classes, test has {}",
                                      cal_all.size(1), test_all.size(1)));
  // The same computation scores calibration and test, so exact ties compare equal.
  sets.member = test_all <= sets.threshold;
  return sets;
}

PredictionSets credible_sets(const Predictive& p, double level) {
  require_level(level, "credible_sets");
  torch::Tensor probs = class_probs(p, "credible_sets");
  auto [sorted, order] = probs.sort(/*stable=*/true, /*dim=*/1, /*descending=*/true);
  // A class joins while the mass before it is still short of the level.
  torch::Tensor before = sorted.cumsum(1) - sorted;
  torch::Tensor keep = before < level - kSlack;
  PredictionSets sets;
  sets.member = at::zeros_like(keep).scatter_(1, order, keep);
  sets.threshold = level;
  return sets;
}

PredictionIntervals conformal_intervals(const Predictive& cal, const torch::Tensor& y_cal,
                                        const Predictive& test, double level) {
  require_level(level, "conformal_intervals");
  auto [mu_cal, sd_cal] = mean_and_std(cal, "conformal_intervals");
  torch::Tensor y = regression_targets(y_cal, mu_cal.size(0), mu_cal.device(), "conformal_intervals");
  PredictionIntervals out;
  out.threshold = conformal_quantile((y - mu_cal).abs() / sd_cal, level);
  auto [mu, sd] = mean_and_std(test, "conformal_intervals");
  out.lower = mu - out.threshold * sd;
  out.upper = mu + out.threshold * sd;
  return out;
}

PredictionIntervals credible_intervals(const Predictive& p, double level) {
  require_level(level, "credible_intervals");
  Mixture m = regression_mixture(p, "credible_intervals");
  PredictionIntervals out;
  out.lower = mixture_quantile(m, 0.5 * (1.0 - level));
  out.upper = mixture_quantile(m, 0.5 * (1.0 + level));
  out.threshold = level;
  return out;
}

SetQuality evaluate_sets(const PredictionSets& sets, const torch::Tensor& y) {
  if (!sets.member.defined() || sets.member.dim() != 2)
    throw InvalidArgument("evaluate_sets: the sets are not a [N, C] membership matrix");
  torch::Tensor labels =
      class_labels(y, sets.member.size(0), sets.member.size(1), sets.member.device(), "evaluate_sets");
  torch::Tensor member = sets.member.to(at::kDouble);
  return {member.gather(1, labels.unsqueeze(1)).mean().item<double>(), member.sum(1).mean().item<double>()};
}

SetQuality evaluate_intervals(const PredictionIntervals& intervals, const torch::Tensor& y) {
  if (!intervals.lower.defined() || !intervals.upper.defined() || intervals.lower.dim() != 1)
    throw InvalidArgument("evaluate_intervals: the intervals are not [N] lower and upper bounds");
  torch::Tensor yd =
      regression_targets(y, intervals.lower.size(0), intervals.lower.device(), "evaluate_intervals");
  torch::Tensor inside = (yd >= intervals.lower) & (yd <= intervals.upper);
  return {inside.to(at::kDouble).mean().item<double>(),
          (intervals.upper - intervals.lower).mean().item<double>()};
}

}  // namespace credence
