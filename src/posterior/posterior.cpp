#include "credence/posterior/posterior.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <fmt/format.h>

#include <cmath>

#include "credence/core/error.h"
#include "credence/core/rng.h"
#include "credence/posterior/certified.h"
#include "credence/posterior/dropout.h"
#include "credence/posterior/gp.h"
#include "credence/posterior/functional_laplace.h"
#include "credence/posterior/laplace.h"
#include "credence/posterior/lowrank_gaussian.h"
#include "credence/posterior/members.h"
#include "credence/posterior/swag.h"

namespace credence {

torch::Tensor stacked_outputs(const Model& model, const torch::Tensor& x, const torch::Tensor& thetas,
                              int64_t batch_size) {
  at::NoGradGuard no_grad;
  std::vector<torch::Tensor> chunks;
  for (int64_t start = 0; start < x.size(0); start += batch_size) {
    int64_t n = std::min(batch_size, x.size(0) - start);
    auto xb = x.narrow(0, start, n);
    // One parameter vector takes the plain path (no batched matmuls).
    chunks.push_back(thetas.size(0) == 1 ? model.forward(xb, thetas[0]).unsqueeze(0) : model.forward(xb, thetas));
  }
  if (chunks.empty())
    throw DataError("cannot predict on an empty dataset");
  return at::cat(chunks, 1);
}

Predictive Posterior::predict(const Model& model, const Likelihood& likelihood, const torch::Tensor& x,
                              double y_mean, double y_std, const PredictOptions& options) const {
  auto thetas = cached_draws(options.samples, options.seed, model.device(), model.dtype());
  auto out = stacked_outputs(model, x, thetas, options.batch_size);
  auto w = weights();
  return likelihood.predictive(out, y_mean, y_std, w.defined() ? w.to(out.device()) : w);
}

void Posterior::forget_draws() const {
  std::lock_guard<std::mutex> lock(draws_.mutex);
  draws_.n = -1;
  draws_.thetas = torch::Tensor();
}

torch::Tensor Posterior::cached_draws(int64_t n, uint64_t seed, torch::Device device, torch::Dtype dtype) const {
  std::lock_guard<std::mutex> lock(draws_.mutex);
  if (draws_.thetas.defined() && draws_.n == n && draws_.seed == seed && draws_.device == device &&
      draws_.dtype == dtype)
    return draws_.thetas;
  draws_.thetas = sample(n, seed).to(device, dtype);
  draws_.n = n;
  draws_.seed = seed;
  draws_.device = device;
  draws_.dtype = dtype;
  return draws_.thetas;
}

ParticlePosterior::ParticlePosterior(torch::Tensor particles, torch::Tensor weights)
    : particles_(particles.dim() == 1 ? particles.unsqueeze(0) : particles), weights_(std::move(weights)) {
  particles_ = particles_.detach();
  if (weights_.defined() && weights_.numel() != particles_.size(0))
    throw InvalidArgument(fmt::format("{} particle weights for {} particles", weights_.numel(),
                                      particles_.size(0)));
}

void ParticlePosterior::set_chains(int64_t chains) {
  if (chains < 1 || particles_.size(0) % chains != 0)
    throw InvalidArgument(fmt::format("{} particles do not split into {} equal chains", particles_.size(0), chains));
  chains_ = chains;
}

void ParticlePosterior::set_log_sigma(torch::Tensor log_sigma) {
  if (log_sigma.defined() && (log_sigma.dim() != 1 || log_sigma.size(0) != particles_.size(0)))
    throw InvalidArgument(fmt::format("need one noise level per particle ({}), got {} values in {} dims",
                                      particles_.size(0), log_sigma.numel(), log_sigma.dim()));
  log_sigma_ = log_sigma.defined() ? log_sigma.detach() : log_sigma;
}

Predictive ParticlePosterior::predict(const Model& model, const Likelihood& likelihood, const torch::Tensor& x,
                                      double y_mean, double y_std, const PredictOptions& options) const {
  if (!log_sigma_.defined()) return Posterior::predict(model, likelihood, x, y_mean, y_std, options);
  auto out = stacked_outputs(model, x, particles_.to(model.device(), model.dtype()), options.batch_size);
  auto w = weights_.defined() ? weights_.to(out.device()) : weights_;
  return likelihood.predictive(out, y_mean, y_std, w, log_sigma_.exp().to(out.device(), out.scalar_type()));
}

void ParticlePosterior::save(TensorMap& tensors, nlohmann::json& meta) const {
  tensors["posterior.particles"] = particles_;
  if (weights_.defined()) tensors["posterior.weights"] = weights_;
  if (log_sigma_.defined()) tensors["posterior.log_sigma"] = log_sigma_;
  meta["chains"] = chains_;
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

MixturePosterior::MixturePosterior(torch::Tensor means, torch::Tensor variances, torch::Tensor weights)
    : means_(means.detach()), variances_(variances.detach()), weights_(weights.detach()) {
  if (means_.dim() != 2 || means_.sizes() != variances_.sizes() || weights_.dim() != 1 ||
      weights_.size(0) != means_.size(0))
    throw InvalidArgument("mixture posterior: means/variances must be [K, P] and weights [K]");
  if (at::any(variances_ < 0).item<bool>() || at::any(weights_ < 0).item<bool>() ||
      std::abs(weights_.sum().item<double>() - 1.0) > 1e-4)
    throw NumericalError("mixture posterior: negative variance, or weights not summing to 1");
}

torch::Tensor MixturePosterior::sample(int64_t n, uint64_t seed) const {
  if (n < 1) throw InvalidArgument(fmt::format("number of samples must be >= 1, got {}", n));
  const int64_t K = means_.size(0);
  auto w = weights_.to(at::kCPU, at::kDouble);
  std::vector<torch::Tensor> draws, sw;
  for (int64_t k = 0; k < K; ++k) {
    double wk = w[k].item<double>();
    if (wk <= 0) continue;
    int64_t nk = std::max<int64_t>(1, std::llround(n * wk));
    auto eps = keyed_randn({nk, means_.size(1)}, rng_key(seed, Stream::Sample, 0, k), means_.options());
    draws.push_back(means_[k] + eps * variances_[k].sqrt());
    sw.push_back(at::full({nk}, wk / nk, w.options()));
  }
  sample_weights_ = at::cat(sw).to(means_.options());
  return at::cat(draws);
}

void MixturePosterior::save(TensorMap& tensors, nlohmann::json& meta) const {
  tensors["posterior.means"] = means_;
  tensors["posterior.variances"] = variances_;
  tensors["posterior.weights"] = weights_;
}

const torch::Tensor& posterior_tensor(const TensorMap& tensors, const std::string& name) {
  auto it = tensors.find(name);
  if (it == tensors.end()) throw IoError(fmt::format("posterior file lacks tensor '{}'", name));
  return it->second;
}

std::unique_ptr<Posterior> load_posterior(const TensorMap& tensors, const nlohmann::json& meta,
                                          const Model& model) {
  const auto device = model.device();
  std::string kind = meta.at("posterior_kind").get<std::string>();
  auto get = [&](const std::string& name) { return posterior_tensor(tensors, name).to(device); };
  if (kind == "particles") {
    auto w = tensors.count("posterior.weights") ? get("posterior.weights") : torch::Tensor();
    auto p = std::make_unique<ParticlePosterior>(get("posterior.particles"), w);
    if (tensors.count("posterior.log_sigma")) p->set_log_sigma(get("posterior.log_sigma"));
    p->set_chains(meta.value("chains", int64_t{1}));
    return p;
  }
  if (kind == "laplace") return LaplacePosterior::load(tensors, meta, model);
  if (kind == "functional_laplace") return FunctionalLaplacePosterior::load(tensors, meta, model);
  if (kind == "gp") return GpPosterior::load(tensors, meta);
  if (kind == "dropout") return DropoutPosterior::load(tensors, meta, model);
  if (kind == "swag") return SwagPosterior::load(tensors, meta, model);
  if (kind == "lowrank_gaussian") return LowRankGaussianPosterior::load(tensors, meta, model);
  if (kind == "members") return MembersPosterior::load(tensors, meta, model);
  if (kind == "mixture")
    return std::make_unique<MixturePosterior>(get("posterior.means"), get("posterior.variances"),
                                              get("posterior.weights"));
  if (kind == "certified_gaussian") {
    TensorMap on_device;
    for (const auto& [name, t] : tensors) on_device[name] = t.to(device);
    return CertifiedGaussianPosterior::load(on_device, meta);
  }
  if (kind == "gaussian") return std::make_unique<GaussianPosterior>(get("posterior.mean"), get("posterior.variance"));
  throw IoError(fmt::format("unknown posterior kind '{}' in file (written by a newer credence?)", kind));
}

}  // namespace credence
