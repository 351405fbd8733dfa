#pragma once
/// Split conformal prediction, and Bayesian credible sets of the same nominal level to compare.
/// Conformal: scores on a calibration set (never used for fitting) give a threshold such that,
/// for exchangeable data, a new example's set covers its label with probability >= level.
/// The scores are the deterministic (non-randomized) versions, so results are reproducible;
/// they cover at least as often as the randomized ones, with slightly larger sets.
#include <torch/types.h>

#include "credence/eval/predictive.h"

namespace credence {

/// Classification score. Adaptive (APS/RAPS): classes sorted by probability (ties by class
/// index), the score of class y is the probability mass up to and including y, plus
/// lambda * max(0, rank(y) - k_reg) (rank from 1). lambda = 0 is APS (Romano et al. 2020);
/// lambda > 0 is RAPS (Angelopoulos et al. 2021), which penalizes long tails of unlikely classes.
/// Threshold (LAC, Sadinle et al. 2019): the score of class y is 1 - p(y); its sets are the
/// smallest on average when the probabilities are calibrated, so it is the default.
struct SetScore {
  double lambda = 0.0;
  int64_t k_reg = 0;
  bool threshold = false;
};
inline SetScore lac() { return {0.0, 0, true}; }
inline SetScore aps() { return {}; }
/// Defaults are the paper's fixed choice for ImageNet.
inline SetScore raps(double lambda = 0.01, int64_t k_reg = 5) { return {lambda, k_reg}; }

/// The ceil((n + 1) level)-th smallest of the n `scores` (the finite-sample conformal
/// quantile); +inf when that rank exceeds n (too few scores for this level).
double conformal_quantile(const torch::Tensor& scores, double level);

/// Prediction sets: member[i, c] = class c is in example i's set.
struct PredictionSets {
  torch::Tensor member;  ///< bool [N, C]
  double threshold = 0;  ///< the calibrated score threshold (conformal), or the level (credible)
};
/// Set score of every class for every example: float64 [N, C].
torch::Tensor set_scores(const Predictive& p, const SetScore& score = lac());
PredictionSets conformal_sets(const Predictive& cal, const torch::Tensor& y_cal, const Predictive& test,
                              double level, const SetScore& score = lac());
/// The smallest set of classes whose predictive mass reaches `level` (most probable first).
PredictionSets credible_sets(const Predictive& p, double level);

/// Prediction intervals [lower, upper], float64 [N].
struct PredictionIntervals {
  torch::Tensor lower, upper;
  double threshold = 0;  ///< conformal: the quantile of |y - mean| / std; credible: the level
};
/// Normalized residuals |y - mean| / std with the predictive std: mean +- q std.
PredictionIntervals conformal_intervals(const Predictive& cal, const torch::Tensor& y_cal,
                                        const Predictive& test, double level);
/// The central `level` interval of each predictive mixture.
PredictionIntervals credible_intervals(const Predictive& p, double level);

/// Empirical coverage, and mean set size (classes) or mean interval width (target units).
struct SetQuality {
  double coverage = 0, size = 0;
};
SetQuality evaluate_sets(const PredictionSets& sets, const torch::Tensor& y);
SetQuality evaluate_intervals(const PredictionIntervals& intervals, const torch::Tensor& y);

}  // namespace credence
