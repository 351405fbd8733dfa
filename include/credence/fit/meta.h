#pragma once
/// Learning a Gaussian prior over a network's weights from related tasks (credence meta-fit):
/// empirical Bayes on the tasks' summed Laplace evidence.
#include <string>
#include <vector>

#include "credence/data/tasks.h"
#include "credence/prior/prior.h"

namespace credence {

struct MetaFitRequest {
  TaskSet tasks;                   ///< raw units; one standardization over all of them
  std::string model = "mlp:32,32";
  std::string likelihood;          ///< "" = the tasks' default; a learned Gaussian noise is shared by the tasks
  /// Each task's Laplace structure: auto (lowrank:rows x outputs, which is exact, when that is at
  /// most 256; else full up to 3000 parameters, else kron), diag, kron, full or lowrank:K.
  std::string hessian = "auto";
  bool learn_mean = true;          ///< false: the mean stays zero and only precisions are learned
  bool standardize = true;         ///< false: the tasks' own units (the prior file then holds no scaling)
  /// One precision per parameter tensor ("tensor"), one in all ("shared"), or one per parameter
  /// ("parameter": then Laplace fits with it need hessian=diag, full or lowrank).
  std::string variance = "tensor";
  int64_t rounds = 60;             ///< EM rounds
  int64_t steps = 50;              ///< L-BFGS iterations of each task's MAP per round (warm-started)
  uint64_t seed = 0;
  bool quiet = true;
  torch::Dtype dtype = torch::kFloat64;
};

struct MetaFitResult {
  /// The prior (and noise) with the highest summed evidence over the rounds, with the tasks'
  /// standardization as its units.
  PriorFile prior;
  std::vector<double> log_evidence;  ///< the tasks' summed Laplace log evidence before each round's update
  double sigma = 1.0;                ///< the Gaussian noise shared by the tasks (standardized units)
};

/// Expectation-maximization on the hierarchical model theta_t ~ N(m, S), D_t | theta_t: each round
/// fits every task's MAP under the current prior and its Laplace posterior N(theta_t, Sigma_t), then
/// sets m to the mean of the theta_t and each tensor's variance to the mean of (theta_t - m)^2 +
/// diag(Sigma_t) over its entries and the tasks (and a Gaussian noise to the mean expected squared
/// residual). For a linear-Gaussian model the Laplace posterior is exact and this is exact
/// type-II maximum likelihood; for a network the evidence is Laplace's approximation, which EM
/// need not increase, so the best round's prior is kept.
MetaFitResult meta_fit(const MetaFitRequest& request);

}  // namespace credence
