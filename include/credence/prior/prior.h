#pragma once
/// Gaussian priors on the flat parameter vector: isotropic, one precision per layer, or learned
/// (a mean per parameter and a precision per tensor, as `credence meta-fit` writes them).
#include <torch/types.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "credence/data/standardizer.h"
#include "credence/model/model.h"

namespace credence {

struct GaussianPrior {
  torch::Tensor precision;  ///< [P], one precision per parameter (expanded from groups)
  torch::Tensor mean;       ///< [P]; undefined for the zero mean
  std::vector<double> layer_precisions;  ///< as given: one value, or one per layer; empty when learned
  std::string source;       ///< the file a learned prior came from ("" otherwise)

  static GaussianPrior isotropic(double precision, const Model& model);
  /// One precision per parametric layer (weights and bias of a layer share it).
  static GaussianPrior per_layer(const std::vector<double>& precisions, const Model& model);
  /// "30" or "gaussian:30" (isotropic), "1,2,3" or "gaussian:1,2,3" (one per layer). A learned
  /// prior's file is read by load_prior_file (it carries the units it was learned in).
  static GaussianPrior parse(const std::string& text, const Model& model);

  bool has_mean() const { return mean.defined(); }
  /// theta - mean (theta itself for the zero mean), for [P] or [S, P].
  torch::Tensor centered(const torch::Tensor& theta) const;
  /// 0.5 * sum precision * (theta - mean)^2 (the negative log density up to a constant), for [P]
  /// -> scalar or [S, P] -> [S].
  torch::Tensor neg_log_prob(const torch::Tensor& theta) const;
  /// Adds `scale` * d/dtheta neg_log_prob to `grad` in place (outside autograd, which would cost a
  /// graph per step) and returns `scale` * neg_log_prob(theta), summed over rows for theta [S, P].
  double add_grad(const torch::Tensor& theta, torch::Tensor& grad, double scale) const;
  std::string describe() const;
};

/// Whether a --prior spec names a learned prior's file ("file:PATH", or a path to such a file)
/// rather than precisions; writes the path to `path`.
bool is_prior_file_spec(const std::string& spec, std::string* path = nullptr);

/// A learned prior as a file: the prior over `model`'s parameters and, when it was learned in
/// units of its own, the standardization of inputs and targets (fits that use it standardize the
/// same way; without, each fit standardizes its own data as usual).
struct PriorFile {
  GaussianPrior prior;  ///< float64 on the CPU when loaded
  bool has_units = false;
  Standardizer standardizer;  ///< when has_units
  std::string model;    ///< the model spec it belongs to
  nlohmann::json info;  ///< how it was learned (tasks, objective, bound)

  /// The prior on `model`'s device and dtype; InvalidArgument naming the file and the mismatch
  /// when the model has another number of parameters.
  GaussianPrior for_model(const Model& model) const;
};
void save_prior_file(const std::string& path, const PriorFile& file, bool overwrite);
/// Reads a prior file; InvalidArgument naming the file when it is missing or not a prior.
PriorFile load_prior_file(const std::string& path);

}  // namespace credence
