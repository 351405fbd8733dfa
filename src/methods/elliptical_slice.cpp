// Elliptical slice sampling (Murray, Adams and MacKay 2010): exact for a Gaussian prior times any
// likelihood, with no step size to adapt, which suits the few coordinates of a subspace.
#include <ATen/ATen.h>
#include <fmt/format.h>

#include <cmath>
#include <random>

#include "credence/core/error.h"
#include "credence/methods/hmc.h"

namespace credence {

ChainResult run_elliptical_chain(const LogLikelihood& log_likelihood, const torch::Tensor& prior_mean,
                                 const torch::Tensor& prior_sd, const torch::Tensor& start,
                                 const SamplerSettings& s, uint64_t key) {
  if (s.warmup < 0 || s.draws < 1)
    throw InvalidArgument(fmt::format("sampler needs warmup >= 0 and draws >= 1, got {} and {}", s.warmup, s.draws));
  constexpr double kTwoPi = 6.28318530717958647692;
  constexpr int kMaxShrinks = 200;  // the bracket halves on average: 200 is below double resolution
  std::mt19937_64 rng(key);
  std::normal_distribution<double> normal;
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  auto mean = prior_mean.to(at::kCPU, at::kDouble).contiguous();
  auto sd = prior_sd.to(at::kCPU, at::kDouble).contiguous();
  auto f = start.to(at::kCPU, at::kDouble).contiguous().clone();
  const int64_t d = f.numel();
  double ll = log_likelihood(f);
  if (!std::isfinite(ll)) throw NumericalError("the log likelihood is not finite at the starting point; start elsewhere");
  auto log_prior = [&](const torch::Tensor& x) { return -0.5 * ((x - mean) / sd).pow(2).sum().item<double>(); };

  ChainResult out;
  out.draws = at::empty({s.draws, d}, at::kFloat);
  out.log_density = at::empty({s.draws}, at::kDouble);
  double evaluations = 0.0;
  auto nu = at::empty({d}, at::kDouble);
  for (int64_t it = 0; it < s.warmup + s.draws; ++it) {
    auto* n = nu.data_ptr<double>();
    for (int64_t i = 0; i < d; ++i) n[i] = normal(rng);
    nu.mul_(sd);  // a draw from the prior, centred
    const double threshold = ll + std::log(uniform(rng));
    double angle = uniform(rng) * kTwoPi, lo = angle - kTwoPi, hi = angle;
    auto centred = f - mean;
    int64_t tries = 0;
    for (;; ++tries) {
      auto proposal = mean + centred * std::cos(angle) + nu * std::sin(angle);
      const double proposal_ll = log_likelihood(proposal);
      if (proposal_ll > threshold) {
        f = proposal;
        ll = proposal_ll;
        break;
      }
      if (tries == kMaxShrinks) break;  // the bracket is empty in floating point: keep the current point
      (angle < 0 ? lo : hi) = angle;
      angle = lo + uniform(rng) * (hi - lo);
    }
    if (s.on_iteration) s.on_iteration(it);
    if (it < s.warmup) continue;
    const int64_t k = it - s.warmup;
    out.draws[k].copy_(f);
    out.log_density[k] = ll + log_prior(f);
    evaluations += static_cast<double>(tries + 1);
  }
  out.mean_accept = 1.0;  // every draw moves along its ellipse
  out.mean_leapfrogs = evaluations / static_cast<double>(s.draws);  // likelihood evaluations per draw
  return out;
}

}  // namespace credence
