#include "credence/eval/uncertainty.h"

#include <fmt/format.h>

#include "credence/core/error.h"
#include "inputs.h"

namespace credence {

using namespace eval_detail;

namespace {

/// Entropy in nats over the last dimension, with 0 log 0 = 0.
torch::Tensor entropy(const torch::Tensor& probs) { return -at::xlogy(probs, probs).sum(-1); }

UncertaintyParts classification_parts(const Predictive& p, const char* fn) {
  UncertaintyParts u;
  torch::Tensor probs = class_probs(p, fn);
  u.total = entropy(probs);
  if (!p.sample_probs.defined()) {
    u.aleatoric = u.total.clone();
    u.epistemic = at::zeros_like(u.total);
    return u;
  }
  torch::Tensor sp = p.sample_probs.detach().to(probs.device(), at::kDouble);
  if (sp.dim() != 3 || sp.size(1) != probs.size(0) || sp.size(2) != probs.size(1))
    throw InvalidArgument(fmt::format("{}: sample_probs have shape {}, expected [S, {}, {}]", fn,
                                      shape_of(sp), probs.size(0), probs.size(1)));
  require_finite(sp, fn, "sample_probs");
  torch::Tensor w = mixture_weights(p.weights, sp.size(0), sp.device(), fn);
  u.aleatoric = (w.unsqueeze(1) * entropy(sp)).sum(0);
  // Mutual information is >= 0 by Jensen; clamp rounding below zero.
  u.epistemic = (u.total - u.aleatoric).clamp_min(0.0);
  return u;
}

}  // namespace

UncertaintyParts decompose_uncertainty(const Predictive& p) {
  const char* fn = "decompose_uncertainty";
  if (p.task == Task::Classification) return classification_parts(p, fn);
  Mixture m = regression_mixture(p, fn);
  torch::Tensor w = m.w.unsqueeze(1);
  torch::Tensor mean = (w * m.mean).sum(0);
  UncertaintyParts u;
  u.aleatoric = (w * m.var).sum(0);
  u.epistemic = (w * (m.mean - mean).pow(2)).sum(0);
  u.total = u.aleatoric + u.epistemic;
  return u;
}

torch::Tensor uncertainty_score(const Predictive& p, const std::string& score) {
  const char* fn = "uncertainty_score";
  if (score == "max_prob") return 1.0 - std::get<0>(class_probs(p, fn).max(1));
  if (score == "entropy") return classification_parts(p, fn).total;
  if (score == "mutual_info") return classification_parts(p, fn).epistemic;
  throw InvalidArgument(
      fmt::format("{}: unknown score '{}' (use max_prob, entropy or mutual_info)", fn, score));
}

}  // namespace credence
