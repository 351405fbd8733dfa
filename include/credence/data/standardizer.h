#pragma once
/// Standardization fitted on the data a method is fitted on; predictions are reported in
/// original units by inverting it.
#include <nlohmann/json.hpp>

#include "credence/core/tensor_io.h"
#include "credence/data/dataset.h"

namespace credence {

struct Standardizer {
  torch::Tensor x_mean, x_std;  ///< per input feature; undefined = inputs left as they are
  double y_mean = 0.0, y_std = 1.0;

  /// Inputs (when the dataset asks for it) and, for regression, the target.
  static Standardizer fit(const Dataset& data);
  torch::Tensor inputs(const torch::Tensor& x) const;
  torch::Tensor targets(const torch::Tensor& y) const;
  /// The dataset in standardized units.
  Dataset apply(const Dataset& data) const;

  void save(TensorMap& tensors, nlohmann::json& meta) const;
  static Standardizer load(const TensorMap& tensors, const nlohmann::json& meta);
};

}  // namespace credence
