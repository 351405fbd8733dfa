#pragma once
/// Acquisition functions: how much a candidate is worth measuring, from a predictive. Optimization
/// acquisitions score a latent objective to be maximized; active-learning ones score a
/// classification (or regression) predictive of unlabeled examples. Higher is better for all.
#include <string>

#include "credence/eval/predictive.h"

namespace credence {

/// The latent objective f at N candidates as a mixture of S Gaussians: means and variances [S, N]
/// and weights [S] (summing to 1). Noise is not part of it: EI and UCB are about f, not about y.
struct LatentObjective {
  torch::Tensor mean, var, weights;
  /// Mixture mean and variance (law of total variance), [N] each.
  torch::Tensor total_mean() const;
  torch::Tensor total_var() const;
};

/// f from a regression predictive, as one Gaussian. Several components (weight draws, particles,
/// members, dropout masks): their means are draws of f, so f gets their mean and variance (their
/// own variances are the noise). A single Gaussian (GP, linearized Laplace) keeps its variance
/// less `noise_var` (the likelihood's, in the predictive's units).
LatentObjective latent_objective(const Predictive& p, double noise_var);

/// Expected improvement over `best`, E[max(f - best, 0)], exact for a mixture of Gaussians: [N].
torch::Tensor expected_improvement(const LatentObjective& f, double best);
/// Upper confidence bound: mixture mean + sqrt(beta) * mixture standard deviation: [N].
torch::Tensor upper_confidence_bound(const LatentObjective& f, double beta);

/// Active-learning scores of a predictive: "bald" (mutual information between label and weights),
/// "entropy" (of the averaged prediction), "variance" (classification: the variance of the class
/// probabilities over weight draws, averaged over classes; regression: the epistemic variance),
/// "margin" (one minus the gap between the two most probable classes). All are >= 0. "bald" and "variance" need a
/// predictive with draws (sample_probs); InvalidArgument says so otherwise.
torch::Tensor active_score(const Predictive& p, const std::string& acquisition);
/// `k` distinct indices of `scores` [N] drawn without replacement, each draw with probability
/// proportional to the score (the Gumbel top-k trick, keyed by `key`); scores below zero switch to
/// probabilities proportional to exp(score).
torch::Tensor draw_in_proportion(const torch::Tensor& scores, int64_t k, uint64_t key);
/// The acquisition names active_score knows, and "random".
const std::vector<std::string>& active_acquisitions();

}  // namespace credence
