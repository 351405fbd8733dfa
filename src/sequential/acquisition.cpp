#include "credence/sequential/acquisition.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <cmath>

#include "credence/core/error.h"
#include "credence/core/rng.h"
#include "credence/eval/uncertainty.h"

namespace credence {

torch::Tensor LatentObjective::total_mean() const { return (weights.unsqueeze(1) * mean).sum(0); }

torch::Tensor LatentObjective::total_var() const {
  auto w = weights.unsqueeze(1);
  return (w * (var + mean.pow(2))).sum(0) - total_mean().pow(2);
}

LatentObjective latent_objective(const Predictive& p, double noise_var) {
  if (p.task != Task::Regression) throw InvalidArgument("optimization acquisitions need a regression predictive");
  LatentObjective f;
  f.mean = p.mean.to(at::kDouble).unsqueeze(0);
  f.weights = at::ones({1}, f.mean.options());
  if (p.sample_mean.defined() && p.sample_mean.size(0) > 1)
    // The components' means are draws of f: one Gaussian with their mean and spread (the
    // epistemic part). As point masses, a few members would give EI = 0 wherever none beats the
    // best so far.
    f.var = decompose_uncertainty(p).epistemic.to(at::kDouble).unsqueeze(0);
  else
    f.var = (p.var.to(at::kDouble) - noise_var).clamp_min(0).unsqueeze(0);
  return f;
}

torch::Tensor expected_improvement(const LatentObjective& f, double best) {
  // Per component: (mu - best) Phi(z) + sd phi(z), z = (mu - best) / sd; max(mu - best, 0) at sd = 0.
  auto gap = f.mean - best;
  auto sd = f.var.sqrt();
  auto safe = sd.clamp_min(1e-300);
  auto z = gap / safe;
  auto cdf = 0.5 * at::erfc(-z / std::sqrt(2.0));
  auto pdf = at::exp(-0.5 * z.pow(2)) / std::sqrt(2 * M_PI);
  auto ei = at::where(sd > 0, gap * cdf + sd * pdf, gap.clamp_min(0));
  return (f.weights.unsqueeze(1) * ei.clamp_min(0)).sum(0);
}

torch::Tensor upper_confidence_bound(const LatentObjective& f, double beta) {
  if (!(beta >= 0)) throw InvalidArgument(fmt::format("UCB beta must be >= 0, got {}", beta));
  return f.total_mean() + std::sqrt(beta) * f.total_var().clamp_min(0).sqrt();
}

torch::Tensor draw_in_proportion(const torch::Tensor& scores, int64_t k, uint64_t key) {
  auto s = scores.to(at::kCPU, at::kDouble);
  auto logits = s.min().item<double>() >= 0 ? at::log(s.clamp_min(1e-300)) : s;
  auto u = at::rand({s.size(0)}, cpu_generator(key), s.options()).clamp(1e-300, 1.0 - 1e-16);
  return std::get<1>((logits - at::log(-at::log(u))).topk(std::min<int64_t>(k, s.size(0))));
}

const std::vector<std::string>& active_acquisitions() {
  static const std::vector<std::string> names = {"bald", "entropy", "variance", "margin", "random"};
  return names;
}

torch::Tensor active_score(const Predictive& p, const std::string& acquisition) {
  const bool has_draws = p.task == Task::Classification ? p.sample_probs.defined() && p.sample_probs.size(0) > 1
                                                        : p.sample_mean.defined() && p.sample_mean.size(0) > 1;
  if ((acquisition == "bald" || acquisition == "variance") && !has_draws && p.task == Task::Classification)
    throw InvalidArgument(fmt::format("acquisition {} needs a predictive with weight draws; this method gives one "
                                      "prediction (use ensemble, mcdropout, laplace:link=mc, vi, swag, ...)",
                                      acquisition));
  if (p.task == Task::Regression) {
    auto u = decompose_uncertainty(p);
    if (acquisition == "bald") return 0.5 * at::log1p(u.epistemic / u.aleatoric.clamp_min(1e-300));
    if (acquisition == "entropy") return 0.5 * at::log(u.total);
    if (acquisition == "variance") return has_draws ? u.epistemic : u.total;
    throw InvalidArgument(fmt::format("acquisition '{}' does not apply to regression (use bald, entropy or variance)",
                                      acquisition));
  }
  if (acquisition == "bald") return decompose_uncertainty(p).epistemic;
  if (acquisition == "entropy") return decompose_uncertainty(p).total;
  if (acquisition == "variance") {
    auto sp = p.sample_probs.to(at::kDouble);
    auto w = p.weights.defined() ? p.weights.to(at::kDouble) : at::full({sp.size(0)}, 1.0 / sp.size(0), sp.options());
    auto mean = (w.view({-1, 1, 1}) * sp).sum(0);
    return (w.view({-1, 1, 1}) * (sp - mean).pow(2)).sum(0).mean(1);
  }
  if (acquisition == "margin") {
    auto top = std::get<0>(p.probs.to(at::kDouble).topk(2, 1));
    return 1.0 - (top.select(1, 0) - top.select(1, 1));
  }
  throw InvalidArgument(fmt::format("unknown acquisition '{}' (known: bald, entropy, variance, margin, random)",
                                    acquisition));
}

}  // namespace credence
