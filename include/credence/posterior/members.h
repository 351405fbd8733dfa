#pragma once
/// An equal mixture of posteriors fitted independently from different seeds ("METHOD:members=M"):
/// a mixture of Laplace approximations around ensemble members (MoLA), ensembles of VI or IVON
/// runs, ensembles of last-layer Laplace fits. Each member keeps its own noise level.
#include <memory>
#include <vector>

#include "credence/posterior/posterior.h"

namespace credence {

class MembersPosterior : public Posterior {
 public:
  /// `sigmas`: each member's fitted Gaussian noise (standardized units), one per member.
  MembersPosterior(std::vector<std::shared_ptr<Posterior>> members, std::vector<double> sigmas);
  std::string kind() const override { return "members"; }
  /// Each member's round(n / M) draws (at least one; a particle member gives its particles), in
  /// member order; weights() then gives each member 1/M of the total.
  torch::Tensor sample(int64_t n, uint64_t seed) const override;
  torch::Tensor weights() const override;
  /// The members' predictives as one mixture with equal member weights.
  Predictive predict(const Model& model, const Likelihood& likelihood, const torch::Tensor& x, double y_mean,
                     double y_std, const PredictOptions& options) const override;
  void save(TensorMap& tensors, nlohmann::json& meta) const override;
  static std::unique_ptr<MembersPosterior> load(const TensorMap& tensors, const nlohmann::json& meta,
                                                const Model& model);
  const std::vector<std::shared_ptr<Posterior>>& members() const { return members_; }

 private:
  std::vector<std::shared_ptr<Posterior>> members_;
  std::vector<double> sigmas_;
  mutable std::mutex weights_mutex_;
  mutable torch::Tensor sample_weights_;  ///< weights of the last sample() draws
};

/// One predictive from several with equal weights: a mixture of all their components.
Predictive mix_predictives(const std::vector<Predictive>& parts);

}  // namespace credence
