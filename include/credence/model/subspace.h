#pragma once
/// A model restricted to an affine subspace of its parameters: theta = origin + z basis, with z
/// [K] the new parameters (Izmailov et al. 2019). Any method that samples or fits theta then
/// works in K dimensions, e.g. NUTS on a large network.
#include <torch/types.h>

#include <memory>
#include <string>

#include "credence/model/model.h"

namespace credence {

/// What a posterior file keeps to rebuild a subspace model.
class Subspace : public Capability {
 public:
  static constexpr const char* kName = "a parameter subspace";
  static constexpr const char* kHint = "fits with subset=pca:K or subset=random:K";
  virtual const std::shared_ptr<Model>& full_model() const = 0;
  virtual const torch::Tensor& origin() const = 0;  ///< [P], orthogonal to the basis
  virtual const torch::Tensor& basis() const = 0;   ///< [K, P], orthonormal rows
  virtual const std::string& description() const = 0;  ///< e.g. "pca:10"
};

/// `inner` on the affine subspace through `point` [P] spanned by the orthonormal rows of `basis`
/// [K, P]: theta = origin + z basis with origin the subspace's point nearest zero (so the
/// isotropic weight prior restricts to an isotropic prior on z); init_params is z at `point`.
/// InvalidArgument for shapes that do not fit.
std::shared_ptr<Model> restrict_to_subspace(std::shared_ptr<Model> inner, torch::Tensor point, torch::Tensor basis,
                                            std::string description);

/// The top-K principal directions [K, P] of `deviations` [T, P] (iterates minus their mean).
/// InvalidArgument when T < K.
torch::Tensor principal_directions(const torch::Tensor& deviations, int64_t K);

/// K random orthonormal directions [K, P], seeded.
torch::Tensor random_directions(int64_t P, int64_t K, uint64_t seed, const torch::TensorOptions& options);

/// "pca:K" or "random:K" -> (kind, K); kind is "" for any other subset spec.
std::pair<std::string, int64_t> parse_subspace_spec(const std::string& spec);

}  // namespace credence
