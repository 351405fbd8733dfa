#pragma once
/// The few posterior types every method produces: particles (ensembles, SVGD, MCMC, and MAP as a
/// single point) and Gaussians (Laplace, VI, SWAG, IVON). Each can sample, predict and save.
#include <nlohmann/json.hpp>

#include <memory>
#include <mutex>
#include <string>

#include "credence/core/tensor_io.h"
#include "credence/eval/predictive.h"
#include "credence/likelihood/likelihood.h"
#include "credence/model/model.h"

namespace credence {

struct PredictOptions {
  int64_t samples = 32;       ///< weight samples for sampled predictives (Gaussian posteriors)
  uint64_t seed = 0;          ///< keys the weight samples
  int64_t batch_size = 1000;  ///< rows per forward pass
};

class Posterior {
 public:
  virtual ~Posterior() = default;
  /// "particles" or "gaussian"; the saved file records it.
  virtual std::string kind() const = 0;
  /// Parameter vectors used for prediction, [S, P]: the particles themselves, or `n` draws.
  virtual torch::Tensor sample(int64_t n, uint64_t seed) const = 0;
  /// Component weights [S] of sample(), or undefined for uniform.
  virtual torch::Tensor weights() const { return {}; }
  /// The predictive at standardized inputs `x`, in original target units.
  virtual Predictive predict(const Model& model, const Likelihood& likelihood, const torch::Tensor& x,
                             double y_mean, double y_std, const PredictOptions& options) const;
  virtual void save(TensorMap& tensors, nlohmann::json& meta) const = 0;

 protected:
  /// predict() keeps its last draws (samples, seed, device, dtype) and reuses them, so a repeated
  /// prediction costs S forward passes and no sampling. Anything that changes the distribution
  /// after a prediction calls this.
  void forget_draws() const;
  /// sample(n, seed) on `device` in `dtype`, from the cache when the key matches.
  torch::Tensor cached_draws(int64_t n, uint64_t seed, torch::Device device, torch::Dtype dtype) const;

 private:
  struct DrawCache {
    DrawCache() = default;
    DrawCache(const DrawCache&) {}  // a copied posterior draws afresh
    DrawCache& operator=(const DrawCache&) { return *this; }
    std::mutex mutex;
    int64_t n = -1;
    uint64_t seed = 0;
    torch::Device device = torch::kCPU;
    torch::Dtype dtype = torch::kFloat32;
    torch::Tensor thetas;
  };
  mutable DrawCache draws_;
};

/// S weighted parameter vectors. MAP is one particle.
class ParticlePosterior : public Posterior {
 public:
  explicit ParticlePosterior(torch::Tensor particles, torch::Tensor weights = {});
  std::string kind() const override { return "particles"; }
  torch::Tensor sample(int64_t n, uint64_t seed) const override { return particles_; }
  torch::Tensor weights() const override { return weights_; }
  Predictive predict(const Model& model, const Likelihood& likelihood, const torch::Tensor& x, double y_mean,
                     double y_std, const PredictOptions& options) const override;
  void save(TensorMap& tensors, nlohmann::json& meta) const override;
  const torch::Tensor& particles() const { return particles_; }

  /// MCMC draws: `chains` equal runs stored chain-major (draw i of chain c at row c * S + i).
  void set_chains(int64_t chains);
  int64_t chains() const { return chains_; }
  /// A sampled Gaussian noise level per particle, log sigma [S] (standardized units), used by
  /// the predictive instead of the likelihood's single sigma.
  void set_log_sigma(torch::Tensor log_sigma);
  const torch::Tensor& log_sigma() const { return log_sigma_; }

 private:
  torch::Tensor particles_, weights_, log_sigma_;
  int64_t chains_ = 1;
};

/// A Gaussian over the parameters with diagonal covariance (structured forms extend it).
class GaussianPosterior : public Posterior {
 public:
  GaussianPosterior(torch::Tensor mean, torch::Tensor variance);
  std::string kind() const override { return "gaussian"; }
  torch::Tensor sample(int64_t n, uint64_t seed) const override;
  void save(TensorMap& tensors, nlohmann::json& meta) const override;
  const torch::Tensor& mean() const { return mean_; }
  const torch::Tensor& variance() const { return variance_; }

 private:
  torch::Tensor mean_, variance_;
};

/// A weighted mixture of K diagonal Gaussians (mixture VI, multi-SWAG). Samples are stratified:
/// component k gets round(n * w_k) draws (at least one), so the predictive keeps each mode.
class MixturePosterior : public Posterior {
 public:
  /// means and variances [K, P], weights [K] summing to 1.
  MixturePosterior(torch::Tensor means, torch::Tensor variances, torch::Tensor weights);
  std::string kind() const override { return "mixture"; }
  torch::Tensor sample(int64_t n, uint64_t seed) const override;
  torch::Tensor weights() const override { return sample_weights_; }
  void save(TensorMap& tensors, nlohmann::json& meta) const override;
  const torch::Tensor& component_weights() const { return weights_; }

 private:
  torch::Tensor means_, variances_, weights_;
  mutable torch::Tensor sample_weights_;  ///< weights of the last sample() draws
};

/// tensors[name] of a posterior file; IoError naming the tensor when the file lacks it.
const torch::Tensor& posterior_tensor(const TensorMap& tensors, const std::string& name);

/// Rebuilds the posterior a file holds; IoError for an unknown kind.
std::unique_ptr<Posterior> load_posterior(const TensorMap& tensors, const nlohmann::json& meta,
                                          const Model& model);

/// Runs the stacked forward in row chunks: outputs [S, N, O] for parameters [S, P].
torch::Tensor stacked_outputs(const Model& model, const torch::Tensor& x, const torch::Tensor& thetas,
                              int64_t batch_size);

}  // namespace credence
