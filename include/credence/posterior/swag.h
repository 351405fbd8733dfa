#pragma once
/// SWA-Gaussian (Maddox et al. 2019): running moments of SGD/Adam iterates, and the Gaussian they
/// define, diagonal plus low rank; with M members (MultiSWAG) an equal mixture of M such Gaussians.
#include <deque>

#include "credence/posterior/posterior.h"

namespace credence {

/// Per member: the running mean and second moment of the collected iterates, and the last `rank`
/// deviations theta_i - mean_i (mean after update i, as in the paper).
class SwagMoments {
 public:
  /// `rank` = 0 keeps no deviations (diagonal SWAG).
  explicit SwagMoments(int64_t rank);
  /// Adds one iterate per member, theta [M, P].
  void update(const torch::Tensor& theta);
  int64_t count() const { return count_; }
  /// [M, P], in theta's dtype.
  torch::Tensor mean() const;
  /// second moment - mean^2, clamped at 0 (round-off): [M, P].
  torch::Tensor variance() const;
  /// The newest min(rank, count) deviations, oldest first: [M, K', P].
  torch::Tensor deviations() const;

 private:
  int64_t rank_;
  int64_t count_ = 0;
  torch::Tensor mean_, second_;  ///< float64: second - mean^2 cancels badly in float32
  std::deque<torch::Tensor> deviations_;
  at::ScalarType dtype_ = at::kFloat;
};

/// theta_m = mean_m + sqrt(scale) * (sqrt(variance_m) z1 + D_m^T z2 / sqrt(K - 1)), so the
/// covariance is scale * (diag(variance_m) + D_m^T D_m / (K - 1)); with K < 2 deviation columns
/// only the diagonal term is used. Samples are stratified: each member gets n / M draws (at least 1).
class SwagPosterior : public Posterior {
 public:
  /// means, variances [M, P]; deviations [M, K, P] (K may be 0); scale > 0.
  SwagPosterior(torch::Tensor means, torch::Tensor variances, torch::Tensor deviations, double scale);
  std::string kind() const override { return "swag"; }
  torch::Tensor sample(int64_t n, uint64_t seed) const override;
  /// Undefined for one member; otherwise uniform over the last sample() draws.
  torch::Tensor weights() const override { return sample_weights_; }
  void save(TensorMap& tensors, nlohmann::json& meta) const override;
  static std::unique_ptr<SwagPosterior> load(const TensorMap& tensors, const nlohmann::json& meta,
                                             const Model& model);

  const torch::Tensor& means() const { return means_; }
  const torch::Tensor& variances() const { return variances_; }
  const torch::Tensor& deviations() const { return deviations_; }
  double scale() const { return scale_; }

 private:
  torch::Tensor means_, variances_, deviations_;
  double scale_;
  mutable torch::Tensor sample_weights_;
};

}  // namespace credence
