#pragma once
/// Hamiltonian Monte Carlo on a full-batch posterior: `nuts` (multinomial No-U-Turn sampler) and
/// `hmc` (fixed trajectory length), both with dual-averaging step size and windowed diagonal
/// mass-matrix adaptation during warm-up.
#include <torch/types.h>

#include <functional>

#include "credence/methods/method.h"
#include "credence/model/subset.h"

namespace credence {

MethodInfo nuts_method_info();
MethodInfo hmc_method_info();
MethodInfo ess_method_info();

/// A differentiable log density on R^D: returns log p(q) and writes its gradient into `grad`.
using LogDensity = std::function<double(const torch::Tensor& q, torch::Tensor& grad)>;

struct SamplerSettings {
  int64_t warmup = 500, draws = 500;
  int max_depth = 8;          ///< NUTS: at most 2^max_depth - 1 leapfrog steps per draw
  int64_t steps = 0;          ///< > 0: plain HMC with this many leapfrog steps per draw
  double target_accept = 0.8;
  bool adapt_mass = true;
  bool dense_mass = false;    ///< adapt a dense rather than diagonal mass matrix
  std::function<void(int64_t iteration)> on_iteration;  ///< progress; may be empty
};

/// The full-batch log posterior of problem.train over q = [theta on `subset` (the rest fixed at
/// `map_theta`), log sigma when `sample_noise`], with the problem's Gaussian prior and a
/// Gamma(shape, rate) prior on the noise precision; the network runs in `dtype` and, when
/// `hand_backward` and the model has one, backpropagates by hand (else through autograd).
LogDensity posterior_log_density(const Problem& problem, const Likelihood& likelihood, const ParamSubset& subset,
                                 const torch::Tensor& map_theta, bool sample_noise, double shape, double rate,
                                 at::ScalarType dtype, bool hand_backward = true);

/// One chain's draws [draws, D] (float32) and what happened on the way.
struct ChainResult {
  torch::Tensor draws;
  torch::Tensor log_density;  ///< [draws] log p at each draw
  double step_size = 0.0;
  torch::Tensor inverse_mass;  ///< the adapted inverse mass matrix: [D] diagonal or [D, D] dense
  int64_t divergences = 0;     ///< after warm-up
  double mean_accept = 0.0;    ///< mean acceptance statistic after warm-up
  double mean_leapfrogs = 0.0; ///< leapfrog steps per draw after warm-up
};

/// Runs one chain from `start` (float64 [D]); random numbers come from `key` alone.
ChainResult run_chain(const LogDensity& log_density, const torch::Tensor& start, const SamplerSettings& settings,
                      uint64_t key);

/// A log likelihood on R^D (no gradient needed).
using LogLikelihood = std::function<double(const torch::Tensor& q)>;

/// One chain of elliptical slice sampling for the prior N(prior_mean, diag(prior_sd^2)) times
/// `log_likelihood`, from `start`: settings.warmup draws discarded, then settings.draws kept;
/// log_density holds log prior + log likelihood (up to a constant) and mean_leapfrogs the
/// likelihood evaluations per draw. Random numbers come from `key` alone.
ChainResult run_elliptical_chain(const LogLikelihood& log_likelihood, const torch::Tensor& prior_mean,
                                 const torch::Tensor& prior_sd, const torch::Tensor& start,
                                 const SamplerSettings& settings, uint64_t key);

/// N(mean, factor factor^T) over R^D; a factor [D] is the standard deviations of independent
/// coordinates (a diagonal factor).
struct GaussianReference {
  torch::Tensor mean;    ///< [D]
  torch::Tensor factor;  ///< [D, D] or [D]
};

/// Elliptical slice sampling of a log posterior with the ellipses of `reference` instead of the
/// prior's: the chain runs in the reference's whitened coordinates on the log posterior less the
/// reference's log density, which leaves the target unchanged; draws and log_density come back in
/// the original coordinates. With the prior as the reference this is the published algorithm.
ChainResult run_elliptical_chain(const LogDensity& log_density, const GaussianReference& reference,
                                 const torch::Tensor& start, const SamplerSettings& settings, uint64_t key);

/// The Laplace approximation of `log_density` near `point`: its negative Hessian there by central
/// differences of the gradient (2D evaluations), eigenvalues floored at `floor_precision`, centred
/// one Newton step from `point` when that raises the density.
/// Elliptical slice sampling with this reference instead of the prior (the likelihood reweighted
/// by prior / reference) takes steps on the posterior's scale rather than the prior's.
GaussianReference laplace_reference(const LogDensity& log_density, const torch::Tensor& point,
                                    double floor_precision);

}  // namespace credence
