#include "credence/posterior/lowrank_gaussian.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include "credence/core/error.h"
#include "credence/core/rng.h"

namespace credence {

LowRankGaussianPosterior::LowRankGaussianPosterior(torch::Tensor mean, torch::Tensor variance,
                                                   torch::Tensor factor, torch::Tensor index)
    : mean_(mean.detach()), variance_(variance.detach()), factor_(factor.detach()), index_(std::move(index)) {
  if (mean_.dim() != 1 || mean_.sizes() != variance_.sizes() || factor_.dim() != 2)
    throw InvalidArgument("low-rank Gaussian posterior: mean and variance must be [P], factor [K, R]");
  const int64_t rows = index_.defined() ? index_.numel() : mean_.size(0);
  if (factor_.size(0) != rows)
    throw InvalidArgument(fmt::format(
        "low-rank Gaussian posterior: factor has {} rows for {} indexed parameters", factor_.size(0), rows));
  if (at::any(variance_ < 0).item<bool>())
    throw NumericalError("low-rank Gaussian posterior: negative variance");
}

torch::Tensor LowRankGaussianPosterior::sample(int64_t n, uint64_t seed) const {
  if (n < 1) throw InvalidArgument(fmt::format("number of samples must be >= 1, got {}", n));
  const int64_t P = mean_.size(0), R = factor_.size(1);
  auto z = keyed_randn({n, P + R}, rng_key(seed, Stream::Sample), mean_.options());
  auto draws = mean_ + z.narrow(1, 0, P) * variance_.sqrt();
  auto low = z.narrow(1, P, R).mm(factor_.t());  // [n, K]
  return index_.defined() ? draws.index_add_(1, index_, low) : draws.add_(low);
}

void LowRankGaussianPosterior::save(TensorMap& tensors, nlohmann::json& meta) const {
  tensors["posterior.mean"] = mean_;
  tensors["posterior.variance"] = variance_;
  tensors["posterior.factor"] = factor_;
  if (index_.defined()) tensors["posterior.index"] = index_;
}

std::unique_ptr<LowRankGaussianPosterior> LowRankGaussianPosterior::load(const TensorMap& tensors,
                                                                         const nlohmann::json& meta,
                                                                         const Model& model) {
  auto get = [&](const std::string& name) { return posterior_tensor(tensors, name).to(model.device()); };
  auto index = tensors.count("posterior.index") ? get("posterior.index").to(at::kLong) : torch::Tensor();
  return std::make_unique<LowRankGaussianPosterior>(get("posterior.mean"), get("posterior.variance"),
                                                    get("posterior.factor"), index);
}

}  // namespace credence
