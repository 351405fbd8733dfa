#pragma once
/// Splitting predictive uncertainty into aleatoric (noise the model expects) and epistemic
/// (disagreement between posterior samples) parts, per example, and scores for OOD detection.
#include <string>

#include "credence/eval/predictive.h"

namespace credence {

/// Classification, in nats: total = aleatoric + epistemic, each [N].
/// total: entropy of the averaged probabilities; aleatoric: expected entropy of the samples;
/// epistemic: mutual information between label and weights. Without sample_probs the
/// predictive is a point estimate: epistemic is 0.
/// Regression (law of total variance): total = var; aleatoric = E_s[var_s];
/// epistemic = Var_s[mean_s].
struct UncertaintyParts {
  torch::Tensor total, aleatoric, epistemic;
};
UncertaintyParts decompose_uncertainty(const Predictive& p);

/// OOD / shift scores for classification, higher = more uncertain: "max_prob" (1 - max_c p_c),
/// "entropy", "mutual_info".
torch::Tensor uncertainty_score(const Predictive& p, const std::string& score);

}  // namespace credence
