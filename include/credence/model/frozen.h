#pragma once
/// Frozen parameters: constants for every method (not trained, not in theta, not in any
/// curvature, sample or prior), kept with the posterior so the model rebuilds from its file.
#include <torch/types.h>

#include <memory>
#include <string>

#include "credence/model/model.h"

namespace credence {

/// What a posterior file keeps of a model with frozen parameters to rebuild it.
class FrozenParameters : public Capability {
 public:
  static constexpr const char* kName = "frozen parameters";
  static constexpr const char* kHint = "models fitted with --freeze";
  /// The --freeze pattern it was built with.
  virtual const std::string& freeze_pattern() const = 0;
  /// Every parameter of the unfrozen model [P_all]: the frozen ones at their fixed values.
  virtual const torch::Tensor& frozen_values() const = 0;
  /// theta [P] or [S, P] of the trainable parameters -> the unfrozen model's [P_all] or [S, P_all].
  virtual torch::Tensor full_theta(const torch::Tensor& theta) const = 0;
  /// The unfrozen model (its layout names the [P_all] entries).
  virtual const Model& unfrozen_model() const = 0;
};

/// `inner` with the parameter tensors named by any comma-separated part of `pattern` (a whole
/// name, or a prefix ending at a dot: "layer0" is layer0.weight and layer0.bias) held at their entries of `values` [P_all]. The result's
/// theta holds only the trainable tensors. InvalidArgument when the pattern matches no tensor or
/// every tensor (listing the names), or freezes a layer's weight without its bias or the reverse.
std::shared_ptr<Model> freeze_parameters(std::shared_ptr<Model> inner, const std::string& pattern,
                                         torch::Tensor values);

}  // namespace credence
