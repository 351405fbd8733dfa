#pragma once
/// A Gaussian with covariance diag(variance) + F F^T, where the factor F covers a subset of the
/// parameters: low-rank plus diagonal VI (F [K, R]) and full-covariance VI (F = L [K, K], the
/// Cholesky factor, with a zero diagonal part).
#include "credence/posterior/posterior.h"

namespace credence {

class LowRankGaussianPosterior : public Posterior {
 public:
  /// mean, variance [P]; factor [K, R], whose rows sit at positions `index` [K] of theta
  /// (undefined: K = P, rows in theta order).
  LowRankGaussianPosterior(torch::Tensor mean, torch::Tensor variance, torch::Tensor factor,
                           torch::Tensor index = {});
  std::string kind() const override { return "lowrank_gaussian"; }
  /// mean + sqrt(variance) z1 + scatter(F z2), from one keyed draw of P + R normals per sample.
  torch::Tensor sample(int64_t n, uint64_t seed) const override;
  void save(TensorMap& tensors, nlohmann::json& meta) const override;
  static std::unique_ptr<LowRankGaussianPosterior> load(const TensorMap& tensors, const nlohmann::json& meta,
                                                        const Model& model);

  const torch::Tensor& mean() const { return mean_; }
  const torch::Tensor& variance() const { return variance_; }
  const torch::Tensor& factor() const { return factor_; }
  const torch::Tensor& index() const { return index_; }

 private:
  torch::Tensor mean_, variance_, factor_, index_;
};

}  // namespace credence
