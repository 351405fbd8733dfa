#pragma once
/// Separating out-of-distribution (or shifted) examples from in-distribution ones by a score.
/// `scores`: floating [N], higher = more likely out; `is_out`: bool or 0/1 integer [N], with at
/// least one of each class. Tied scores are treated as one threshold, never split.
#include <torch/types.h>

#include <map>
#include <string>

#include "credence/eval/predictive.h"

namespace credence {

/// Area under the ROC curve: the Mann-Whitney statistic with mid-ranks for ties, i.e.
/// P(score_out > score_in) + P(score_out = score_in) / 2.
double auroc(const torch::Tensor& scores, const torch::Tensor& is_out);
/// Area under the precision-recall curve with "out" as the positive class, as average
/// precision: sum over distinct thresholds of (recall gain) x precision.
double aupr(const torch::Tensor& scores, const torch::Tensor& is_out);
/// False positive rate at the highest threshold whose true positive rate reaches `tpr`.
double fpr_at_tpr(const torch::Tensor& scores, const torch::Tensor& is_out, double tpr = 0.95);

/// auroc, aupr, fpr95 of uncertainty_score(`score`) for in-distribution `in` against `out`.
std::map<std::string, double> ood_metrics(const Predictive& in, const Predictive& out,
                                          const std::string& score = "entropy");

}  // namespace credence
