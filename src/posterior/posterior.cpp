#include "credence/posterior/posterior.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <fmt/format.h>

#include "credence/core/error.h"
#include "credence/core/rng.h"

namespace credence {

torch::Tensor stacked_outputs(const Model& model, const torch::Tensor& x, const torch::Tensor& thetas,
                              int64_t batch_size) {
  at::NoGradGuard no_grad;
  std::vector<torch::Tensor> chunks;
  for (int64_t start = 0; start < x.size(0); start += batch_size) {
    int64_t n = std::min(batch_size, x.size(0) - start);
    chunks.push_back(model.forward(x.narrow(0, start, n), thetas));
  }
  if (chunks.empty())
    throw DataError("cannot predict on an empty dataset");
  return at::cat(chunks, 1);
}

Predictive Posterior::predict(const Model& model, const Likelihood& likelihood, const torch::Tensor& x,
                              double y_mean, double y_std, const PredictOptions& options) const {
  auto thetas = sample(options.samples, options.seed).to(model.device(), model.dtype());
  auto out = stacked_outputs(model, x, thetas, options.batch_size);
  auto w = weights();
  return likelihood.predictive(out, y_mean, y_std, w.defined() ? w.to(out.device()) : w);
}

ParticlePosterior::ParticlePosterior(torch::Tensor particles, torch::Tensor weights)
    : particles_(particles.dim() == 1 ? particles.unsqueeze(0) : particles), weights_(std::move(weights)) {
  particles_ = particles_.detach();
  if (weights_.defined() && weights_.numel() != particles_.size(0))
    throw InvalidArgument(fmt::format("{} particle weights for {} particles", weights_.numel(),
                                      particles_.size(0)));
}

void ParticlePosterior::save(TensorMap& tensors, nlohmann::json& meta) const {
  tensors["posterior.particles"] = particles_;
  if (weights_.defined()) tensors["posterior.weights"] = weights_;
}

GaussianPosterior::GaussianPosterior(torch::Tensor mean, torch::Tensor variance)
    : mean_(mean.detach()), variance_(variance.detach()) {
  if (mean_.sizes() != variance_.sizes())
    throw InvalidArgument("Gaussian posterior: mean and variance differ in shape");
  if (at::any(variance_ < 0).item<bool>()) throw NumericalError("Gaussian posterior: negative variance");
}

torch::Tensor GaussianPosterior::sample(int64_t n, uint64_t seed) const {
  if (n < 1) throw InvalidArgument(fmt::format("number of samples must be >= 1, got {}", n));
  auto eps = keyed_randn({n, mean_.size(0)}, rng_key(seed, Stream::Sample), mean_.options());
  return mean_ + eps * variance_.sqrt();
}

void GaussianPosterior::save(TensorMap& tensors, nlohmann::json& meta) const {
  tensors["posterior.mean"] = mean_;
  tensors["posterior.variance"] = variance_;
}

std::unique_ptr<Posterior> load_posterior(const TensorMap& tensors, const nlohmann::json& meta,
                                          torch::Device device) {
  std::string kind = meta.at("posterior_kind").get<std::string>();
  auto get = [&](const std::string& name) {
    auto it = tensors.find(name);
    if (it == tensors.end()) throw IoError(fmt::format("posterior file lacks tensor '{}'", name));
    return it->second.to(device);
  };
  if (kind == "particles") {
    auto w = tensors.count("posterior.weights") ? get("posterior.weights") : torch::Tensor();
    return std::make_unique<ParticlePosterior>(get("posterior.particles"), w);
  }
  if (kind == "gaussian") return std::make_unique<GaussianPosterior>(get("posterior.mean"), get("posterior.variance"));
  throw IoError(fmt::format("unknown posterior kind '{}' in file (written by a newer credence?)", kind));
}

}  // namespace credence
