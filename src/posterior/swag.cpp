#include "credence/posterior/swag.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <cmath>

#include "credence/core/error.h"
#include "credence/core/rng.h"

namespace credence {

SwagMoments::SwagMoments(int64_t rank) : rank_(rank) {
  if (rank < 0) throw InvalidArgument(fmt::format("SWAG rank must be >= 0, got {}", rank));
}

void SwagMoments::update(const torch::Tensor& theta) {
  if (theta.dim() != 2) throw InvalidArgument("SwagMoments::update expects stacked parameters [M, P]");
  auto t = theta.detach().to(at::kDouble);
  if (count_ == 0) {
    dtype_ = theta.scalar_type();
    mean_ = at::zeros_like(t);
    second_ = at::zeros_like(t);
  } else if (t.sizes() != mean_.sizes()) {
    throw InvalidArgument("SwagMoments::update: parameter shape changed between updates");
  }
  ++count_;
  const double w = 1.0 / static_cast<double>(count_);
  mean_.add_(t - mean_, w);
  second_.add_(t * t - second_, w);
  if (rank_ == 0) return;
  deviations_.push_back((t - mean_).to(dtype_));
  if (static_cast<int64_t>(deviations_.size()) > rank_) deviations_.pop_front();
}

torch::Tensor SwagMoments::mean() const {
  if (count_ == 0) throw InvalidArgument("SwagMoments: no iterate collected yet");
  return mean_.to(dtype_);
}

torch::Tensor SwagMoments::variance() const {
  if (count_ == 0) throw InvalidArgument("SwagMoments: no iterate collected yet");
  return (second_ - mean_ * mean_).clamp_min(0).to(dtype_);
}

torch::Tensor SwagMoments::deviations() const {
  if (count_ == 0) throw InvalidArgument("SwagMoments: no iterate collected yet");
  if (deviations_.empty()) return at::empty({mean_.size(0), 0, mean_.size(1)}, mean_.options().dtype(dtype_));
  return at::stack(std::vector<torch::Tensor>(deviations_.begin(), deviations_.end()), 1);
}

SwagPosterior::SwagPosterior(torch::Tensor means, torch::Tensor variances, torch::Tensor deviations, double scale)
    : means_(means.detach()), variances_(variances.detach()), deviations_(deviations.detach()), scale_(scale) {
  if (means_.dim() != 2 || means_.sizes() != variances_.sizes() || deviations_.dim() != 3 ||
      deviations_.size(0) != means_.size(0) || deviations_.size(2) != means_.size(1))
    throw InvalidArgument("SWAG posterior: means/variances must be [M, P] and deviations [M, K, P]");
  if (!(scale_ > 0)) throw InvalidArgument(fmt::format("SWAG posterior: scale must be > 0, got {}", scale_));
  if (at::any(variances_ < 0).item<bool>()) throw NumericalError("SWAG posterior: negative variance");
}

torch::Tensor SwagPosterior::sample(int64_t n, uint64_t seed) const {
  if (n < 1) throw InvalidArgument(fmt::format("number of samples must be >= 1, got {}", n));
  const int64_t M = means_.size(0), P = means_.size(1), K = deviations_.size(1);
  const int64_t per_member = std::max<int64_t>(1, n / M);
  std::vector<torch::Tensor> draws;
  for (int64_t m = 0; m < M; ++m) {
    // One keyed draw per member: P diagonal normals, then K low-rank normals.
    auto z = keyed_randn({per_member, P + K}, rng_key(seed, Stream::Sample, 0, m), means_.options());
    auto step = z.narrow(1, 0, P) * variances_[m].sqrt();
    if (K >= 2) step = step + at::matmul(z.narrow(1, P, K), deviations_[m]) / std::sqrt(K - 1.0);
    draws.push_back(means_[m] + std::sqrt(scale_) * step);
  }
  const int64_t S = per_member * M;
  sample_weights_ = M == 1 ? torch::Tensor() : at::full({S}, 1.0 / static_cast<double>(S), means_.options());
  return at::cat(draws);
}

void SwagPosterior::save(TensorMap& tensors, nlohmann::json& meta) const {
  tensors["posterior.swag_mean"] = means_;
  tensors["posterior.swag_variance"] = variances_;
  tensors["posterior.swag_deviations"] = deviations_;
  meta["swag_scale"] = scale_;
}

std::unique_ptr<SwagPosterior> SwagPosterior::load(const TensorMap& tensors, const nlohmann::json& meta,
                                                   const Model& model) {
  auto get = [&](const std::string& name) { return posterior_tensor(tensors, name).to(model.device()); };
  if (!meta.contains("swag_scale")) throw IoError("SWAG posterior file lacks 'swag_scale'");
  return std::make_unique<SwagPosterior>(get("posterior.swag_mean"), get("posterior.swag_variance"),
                                         get("posterior.swag_deviations"), meta.at("swag_scale").get<double>());
}

}  // namespace credence
