#pragma once
/// A fitted model: network, likelihood, standardization and posterior, saved as one file.
#include <memory>
#include <string>

#include "credence/data/standardizer.h"
#include "credence/posterior/posterior.h"

namespace credence {

struct FittedModel {
  std::shared_ptr<Model> model;
  Likelihood likelihood;
  Standardizer standardizer;
  std::shared_ptr<Posterior> posterior;
  std::string method;       ///< the METHOD spec as given
  int64_t num_classes = 0;  ///< classification only
  nlohmann::json info = nlohmann::json::object();  ///< fit facts: seconds, epochs, options

  /// The predictive for `data` (original units). Refuses data whose input shape, task or class
  /// count differ from what the model was fitted on.
  Predictive predict(const Dataset& data, const PredictOptions& options = {}) const;
  void check_data(const Dataset& data) const;
  /// The single weight vector [P] of the posterior (MAP, Laplace's mode, a Gaussian's mean, a
  /// one-particle fit); InvalidArgument for posteriors of several weight vectors.
  torch::Tensor point() const;
  /// `theta` [P] as the full network's named tensors: frozen ones included, a subspace mapped
  /// back, and adapters folded into their layers (W + alpha / rank B A), so the names and shapes
  /// are the backbone's (a PyTorch module's state_dict where the network came from one).
  std::vector<std::pair<std::string, torch::Tensor>> full_weights(const torch::Tensor& theta) const;

  static constexpr int kFormatVersion = 1;
  /// Refuses to replace an existing file unless `overwrite`.
  void save(const std::string& path, bool overwrite = false) const;
  /// Loads a file; if `expected` is given, refuses a file saved for a different model.
  static FittedModel load(const std::string& path, torch::Device device = torch::kCPU,
                          const Model* expected = nullptr);
};

/// For MCMC posteriors (several chains): R-hat and ESS of the test predictions, as `rhat` (90th
/// percentile), `rhat_max`, `ess` (smallest bulk ESS) and `ess_tail`; empty for other
/// posteriors. Appends what failed the recommended thresholds to `warnings` when given.
std::map<std::string, double> convergence_metrics(const FittedModel& fitted, const Predictive& predictive,
                                                  std::vector<std::string>* warnings = nullptr);

}  // namespace credence
