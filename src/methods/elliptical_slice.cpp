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

ChainResult run_elliptical_chain(const LogDensity& log_density, const GaussianReference& reference,
                                 const torch::Tensor& start, const SamplerSettings& s, uint64_t key) {
  const auto& mean = reference.mean;
  const auto& factor = reference.factor;
  const bool diagonal = factor.dim() == 1;
  auto to_original = [&](const torch::Tensor& u) { return mean + (diagonal ? factor * u : factor.mv(u)); };
  auto grad = at::empty_like(mean);
  LogLikelihood reweighted = [&](const torch::Tensor& u) {
    return log_density(to_original(u), grad) + 0.5 * u.dot(u).item<double>();
  };
  auto shift = start.to(at::kCPU, at::kDouble) - mean;
  auto u0 = diagonal ? shift / factor : at::linalg_solve(factor, shift);
  const int64_t d = mean.numel();
  const auto f64 = at::TensorOptions().dtype(at::kDouble);
  auto r = run_elliptical_chain(reweighted, at::zeros({d}, f64), at::ones({d}, f64), u0, s, key);
  auto u = r.draws.to(at::kDouble);
  r.draws = (mean.unsqueeze(0) + (diagonal ? u * factor : u.mm(factor.t()))).to(at::kFloat);
  return r;
}

GaussianReference laplace_reference(const LogDensity& log_density, const torch::Tensor& point,
                                    double floor_precision) {
  auto q = point.to(at::kCPU, at::kDouble).contiguous().reshape({-1});
  const int64_t d = q.numel();
  auto hessian = at::empty({d, d}, at::kDouble);  // of the negative log density, by central differences
  auto grad_plus = at::empty({d}, at::kDouble), grad_minus = at::empty({d}, at::kDouble);
  for (int64_t k = 0; k < d; ++k) {
    const double h = 1e-4 * std::max(1.0, std::abs(q[k].item<double>()));
    auto plus = q.clone(), minus = q.clone();
    plus[k] += h;
    minus[k] -= h;
    log_density(plus, grad_plus);
    log_density(minus, grad_minus);
    hessian[k].copy_((grad_minus - grad_plus) / (2 * h));
  }
  if (!hessian.isfinite().all().item<bool>())
    throw NumericalError("the log density's curvature at the MAP is not finite; use reference=prior");
  auto [values, vectors] = at::linalg_eigh(0.5 * (hessian + hessian.t()));
  // Directions the likelihood leaves flat or curved the wrong way keep at least the prior's precision.
  auto factor = vectors * values.clamp_min(floor_precision).rsqrt().unsqueeze(0);
  // A trained point is near the mode, not at it: one Newton step centres the reference (exactly,
  // for a Gaussian), kept only when it raises the density.
  auto grad = at::empty({d}, at::kDouble), newton_grad = at::empty({d}, at::kDouble);
  const double here = log_density(q, grad);
  auto newton = q + factor.mv(factor.t().mv(grad));
  const double there = log_density(newton, newton_grad);
  return {std::isfinite(there) && there > here ? newton : q, factor};
}

}  // namespace credence
