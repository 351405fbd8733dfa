#pragma once
/// Selective prediction: answer only the most confident examples and abstain on the rest.
/// Examples with equal confidence are accepted or rejected together (a threshold cannot split
/// them), so results do not depend on the order of the data.
#include <vector>

#include "credence/eval/predictive.h"

namespace credence {

/// One point per distinct confidence threshold, from the most confident group down:
/// coverage = fraction accepted, risk = mean loss of the accepted.
struct RiskCoverage {
  std::vector<double> coverage, risk;
};
/// Generic form: `confidence` and `loss` floating [N] (e.g. -std and squared error).
RiskCoverage risk_coverage(const torch::Tensor& confidence, const torch::Tensor& loss);
/// Classification: confidence = top-label probability, loss = 0/1 error.
RiskCoverage risk_coverage(const Predictive& p, const torch::Tensor& y);

/// Area under the risk-coverage curve: the mean over examples of the risk at the threshold that
/// first accepts them (without ties, (1/N) sum_k risk of the k most confident).
double aurc(const RiskCoverage& curve);
double aurc(const Predictive& p, const torch::Tensor& y);

/// Accuracy on the fraction `coverage` in (0, 1] most confident examples. When the cut falls in
/// a group of ties, that group contributes its mean accuracy (the expectation over tie orders).
double accuracy_at_coverage(const Predictive& p, const torch::Tensor& y, double coverage);

}  // namespace credence
