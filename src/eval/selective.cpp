#include "credence/eval/selective.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include "credence/core/error.h"
#include "inputs.h"

namespace credence {

using namespace eval_detail;

namespace {

/// Tie groups by confidence, most confident first: size and summed loss of each.
struct Groups {
  std::vector<double> count, loss;
  double total = 0;
};

Groups groups_of(const torch::Tensor& confidence, const torch::Tensor& loss, const char* fn) {
  if (!confidence.defined() || confidence.dim() != 1 || confidence.size(0) == 0)
    throw InvalidArgument(fmt::format("{}: confidence has shape {}, expected non-empty [N]", fn,
                                      confidence.defined() ? shape_of(confidence) : "undefined"));
  if (!loss.defined() || !loss.sizes().equals(confidence.sizes()))
    throw InvalidArgument(fmt::format("{}: loss has shape {}, expected [{}] like confidence", fn,
                                      loss.defined() ? shape_of(loss) : "undefined", confidence.size(0)));
  torch::Tensor c = confidence.detach().to(at::kCPU, at::kDouble);
  torch::Tensor l = loss.detach().to(at::kCPU, at::kDouble);
  require_finite(c, fn, "confidence");
  require_finite(l, fn, "loss");
  torch::Tensor order = std::get<1>(c.sort(/*stable=*/true, /*dim=*/0, /*descending=*/true));
  c = c.index_select(0, order).contiguous();
  l = l.index_select(0, order).contiguous();
  const double* cv = c.data_ptr<double>();
  const double* lv = l.data_ptr<double>();
  Groups g;
  for (int64_t i = 0; i < c.size(0); ++i) {
    if (i == 0 || cv[i] != cv[i - 1]) {
      g.count.push_back(0);
      g.loss.push_back(0);
    }
    g.count.back() += 1;
    g.loss.back() += lv[i];
  }
  g.total = static_cast<double>(c.size(0));
  return g;
}

std::pair<torch::Tensor, torch::Tensor> confidence_and_error(const Predictive& p, const torch::Tensor& y,
                                                             const char* fn) {
  auto [probs, labels] = classification_inputs(p, y, fn);
  auto [conf, pred] = probs.max(1);
  return {conf, pred.ne(labels).to(at::kDouble)};
}

}  // namespace

RiskCoverage risk_coverage(const torch::Tensor& confidence, const torch::Tensor& loss) {
  Groups g = groups_of(confidence, loss, "risk_coverage");
  RiskCoverage curve;
  double n = 0, l = 0;
  for (size_t j = 0; j < g.count.size(); ++j) {
    n += g.count[j];
    l += g.loss[j];
    curve.coverage.push_back(n / g.total);
    curve.risk.push_back(l / n);
  }
  return curve;
}

RiskCoverage risk_coverage(const Predictive& p, const torch::Tensor& y) {
  auto [conf, err] = confidence_and_error(p, y, "risk_coverage");
  return risk_coverage(conf, err);
}

double aurc(const RiskCoverage& curve) {
  if (curve.coverage.empty() || curve.coverage.size() != curve.risk.size())
    throw InvalidArgument("aurc: the risk-coverage curve is empty or its parts differ in length");
  // Each group's share of examples is its coverage step.
  double area = 0, prev = 0;
  for (size_t j = 0; j < curve.coverage.size(); ++j) {
    area += (curve.coverage[j] - prev) * curve.risk[j];
    prev = curve.coverage[j];
  }
  return area;
}

double aurc(const Predictive& p, const torch::Tensor& y) { return aurc(risk_coverage(p, y)); }

double accuracy_at_coverage(const Predictive& p, const torch::Tensor& y, double coverage) {
  if (!(coverage > 0.0 && coverage <= 1.0))
    throw InvalidArgument(
        fmt::format("accuracy_at_coverage: coverage must be in (0, 1] (e.g. 0.8), got {}", coverage));
  auto [conf, err] = confidence_and_error(p, y, "accuracy_at_coverage");
  Groups g = groups_of(conf, err, "accuracy_at_coverage");
  const double want = coverage * g.total;
  double taken = 0, errors = 0;
  for (size_t j = 0; j < g.count.size() && taken < want; ++j) {
    double share = std::min(g.count[j], want - taken);
    errors += g.loss[j] * share / g.count[j];
    taken += share;
  }
  return 1.0 - errors / taken;
}

}  // namespace credence
