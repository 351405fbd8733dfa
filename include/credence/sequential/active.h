#pragma once
/// Pool-based active learning with any credence method: fit on the labelled rows, score the
/// unlabelled pool with an acquisition, label the best, repeat; a learning curve comes out.
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "credence/fit/fit.h"

namespace credence {

struct ActiveLearningOptions {
  std::string model = "mlp:50";
  std::string method = "ensemble";
  std::string likelihood;
  std::string init, freeze, adapters;  ///< as FitRequest's: a pretrained backbone, frozen parts, LoRA
  TrainOptions train;           ///< the recipe of every refit (its seed is keyed per round)
  std::string acquisition = "bald";  ///< bald, entropy, variance, margin or random
  /// How a batch is drawn from the scores: "power" (k drawn without replacement with
  /// probabilities proportional to the scores, Kirsch et al. 2023's power acquisition) or "top"
  /// (the k best, which are often redundant: on Fashion-MNIST top-k BALD fell behind random).
  std::string selection = "power";
  int64_t initial = 20;         ///< labelled rows to start with
  bool balanced = true;         ///< classification: the initial rows spread evenly over classes
  int64_t batch = 10;           ///< rows labelled per round
  int64_t budget = 500;         ///< labelled rows at the end
  int64_t samples = 32;         ///< predictive draws of Gaussian posteriors
  uint64_t seed = 0;
  void validate() const;
};

struct ActiveRound {
  int64_t labels = 0;                       ///< labelled rows the model was fitted on
  std::vector<int64_t> added;               ///< pool rows labelled for this round (round 0: the initial ones)
  std::map<std::string, double> metrics;    ///< on the test set (standard_metrics)
  double fit_seconds = 0, score_seconds = 0;
};

/// The `k` rows of `pool` among `candidates` (int64 indices) to label next, as int64 pool indices:
/// those `acquisition` ranks highest (selection "top"; ties and "random" broken by `key`), or k
/// drawn with probabilities proportional to their scores (selection "power").
torch::Tensor select_queries(const FittedModel& fitted, const Dataset& pool, const torch::Tensor& candidates,
                             const std::string& acquisition, int64_t k, uint64_t key, int64_t samples = 32,
                             const std::string& selection = "top");

/// Runs the loop to the budget; `on_round` sees each round as it ends (for progress output).
std::vector<ActiveRound> run_active_learning(const Dataset& pool, const Dataset& test,
                                             const ActiveLearningOptions& options,
                                             const std::function<void(const ActiveRound&)>& on_round = {});

}  // namespace credence
