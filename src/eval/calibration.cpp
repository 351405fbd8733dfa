#include "credence/eval/calibration.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "credence/core/error.h"
#include "credence/eval/metrics.h"
#include "inputs.h"

namespace credence {

using namespace eval_detail;

namespace {

constexpr double kPi = 3.14159265358979323846;

void require_bins(int bins, const char* fn) {
  if (bins < 1) throw InvalidArgument(fmt::format("{}: bins must be >= 1, got {}", fn, bins));
}

/// Right-closed equal-width bin of each value in [0, 1], as ece() does it: int64, same shape.
torch::Tensor bin_index(const torch::Tensor& v, int bins) {
  torch::Tensor boundaries = at::arange(1, bins, v.options()) / static_cast<double>(bins);
  return at::bucketize(v, boundaries, /*out_int32=*/false, /*right=*/false);
}

/// Per-bin sums of `values` over `bin`: float64 [bins] on the CPU.
std::vector<double> bin_sums(const torch::Tensor& bin, const torch::Tensor& values, int bins) {
  torch::Tensor s = at::zeros({bins}, values.options()).index_add_(0, bin, values).cpu();
  return std::vector<double>(s.data_ptr<double>(), s.data_ptr<double>() + bins);
}

torch::Tensor std_normal_pdf(const torch::Tensor& z) { return at::exp(-0.5 * z * z) / std::sqrt(2.0 * kPi); }

/// E|X| for X ~ N(mu, var): mu (2 Phi(mu/sd) - 1) + 2 sd phi(mu/sd).
torch::Tensor abs_moment(const torch::Tensor& mu, const torch::Tensor& var) {
  torch::Tensor sd = var.sqrt();
  torch::Tensor z = mu / sd;
  return mu * (2.0 * normal_cdf(z) - 1.0) + 2.0 * sd * std_normal_pdf(z);
}

}  // namespace

ReliabilityDiagram reliability_diagram(const Predictive& p, const torch::Tensor& y, int bins) {
  require_bins(bins, "reliability_diagram");
  auto [probs, labels] = classification_inputs(p, y, "reliability_diagram");
  auto [conf, pred] = probs.max(1);
  torch::Tensor bin = bin_index(conf, bins);
  std::vector<double> n = bin_sums(bin, at::ones_like(conf), bins);
  std::vector<double> c = bin_sums(bin, conf, bins);
  std::vector<double> a = bin_sums(bin, pred.eq(labels).to(at::kDouble), bins);
  ReliabilityDiagram d;
  for (int b = 0; b <= bins; ++b) d.edges.push_back(static_cast<double>(b) / bins);
  for (int b = 0; b < bins; ++b) {
    d.count.push_back(static_cast<int64_t>(std::llround(n[b])));
    d.mean_confidence.push_back(n[b] > 0 ? c[b] / n[b] : 0.0);
    d.accuracy.push_back(n[b] > 0 ? a[b] / n[b] : 0.0);
  }
  return d;
}

std::vector<int64_t> confidence_histogram(const Predictive& p, int bins) {
  require_bins(bins, "confidence_histogram");
  torch::Tensor conf = std::get<0>(class_probs(p, "confidence_histogram").max(1));
  std::vector<double> n = bin_sums(bin_index(conf, bins), at::ones_like(conf), bins);
  std::vector<int64_t> out;
  for (double v : n) out.push_back(static_cast<int64_t>(std::llround(v)));
  return out;
}

double mce(const Predictive& p, const torch::Tensor& y, int bins) {
  require_bins(bins, "mce");
  ReliabilityDiagram d = reliability_diagram(p, y, bins);
  double worst = 0.0;
  for (int b = 0; b < bins; ++b)
    if (d.count[b] > 0) worst = std::max(worst, std::abs(d.accuracy[b] - d.mean_confidence[b]));
  return worst;
}

double classwise_ece(const Predictive& p, const torch::Tensor& y, int bins) {
  require_bins(bins, "classwise_ece");
  auto [probs, labels] = classification_inputs(p, y, "classwise_ece");
  const int64_t N = probs.size(0), C = probs.size(1);
  torch::Tensor onehot = at::zeros_like(probs).scatter_(1, labels.unsqueeze(1), 1.0);
  // One bin per (class, confidence bin): sum_c sum_b |sum(1[y=c]) - sum(p_c)| / N, over C.
  torch::Tensor cls = at::arange(C, labels.options()).unsqueeze(0).expand({N, C});
  torch::Tensor bin = (bin_index(probs, bins) + cls * bins).reshape({-1});
  auto opts = probs.options();
  torch::Tensor gap = at::zeros({C * bins}, opts).index_add_(0, bin, onehot.reshape({-1})) -
                      at::zeros({C * bins}, opts).index_add_(0, bin, probs.reshape({-1}));
  return (gap.abs().sum() / static_cast<double>(N * C)).item<double>();
}

torch::Tensor pit_values(const Predictive& p, const torch::Tensor& y) {
  Mixture m = regression_mixture(p, "pit_values");
  return mixture_cdf(m, regression_targets(y, m.mean.size(1), m.mean.device(), "pit_values"));
}

std::vector<double> pit_histogram(const Predictive& p, const torch::Tensor& y, int bins) {
  require_bins(bins, "pit_histogram");
  torch::Tensor pit = pit_values(p, y);
  // Left-closed bins [b/B, (b+1)/B), the last one closed: a uniform PIT fills each equally.
  torch::Tensor bin = (pit * bins).floor().clamp(0, bins - 1).to(at::kLong);
  std::vector<double> n = bin_sums(bin, at::ones_like(pit), bins);
  for (double& v : n) v /= static_cast<double>(pit.size(0));
  return n;
}

double quantile_calibration_error(const Predictive& p, const torch::Tensor& y, int levels) {
  if (levels < 1)
    throw InvalidArgument(fmt::format("quantile_calibration_error: levels must be >= 1, got {}", levels));
  // y <= F^-1(q) exactly when F(y) <= q, so the PIT values give every level at once.
  torch::Tensor pit = pit_values(p, y);
  torch::Tensor q = at::arange(1, levels + 1, pit.options()) / static_cast<double>(levels + 1);
  torch::Tensor below = (pit.unsqueeze(0) <= q.unsqueeze(1)).to(at::kDouble).mean(1);
  return (below - q).abs().mean().item<double>();
}

std::vector<double> coverage_at(const Predictive& p, const torch::Tensor& y,
                                const std::vector<double>& levels) {
  std::vector<double> out;
  for (double level : levels) out.push_back(coverage(p, y, level));
  return out;
}

torch::Tensor crps_values(const Predictive& p, const torch::Tensor& y) {
  Mixture m = regression_mixture(p, "crps");
  const int64_t S = m.mean.size(0), N = m.mean.size(1);
  torch::Tensor yd = regression_targets(y, N, m.mean.device(), "crps");
  torch::Tensor w = m.w.unsqueeze(1);
  torch::Tensor to_y = (w * abs_moment(yd.unsqueeze(0) - m.mean, m.var)).sum(0);  // E|X - y|
  // E|X - X'| over component pairs: S x S x chunk at a time, to bound memory.
  torch::Tensor pair = at::empty({N}, yd.options());
  torch::Tensor ww = (m.w.unsqueeze(1) * m.w.unsqueeze(0)).unsqueeze(2);
  const int64_t chunk = std::max<int64_t>(1, (1 << 22) / (S * S));
  for (int64_t a = 0; a < N; a += chunk) {
    int64_t b = std::min(N, a + chunk);
    torch::Tensor mu = m.mean.slice(1, a, b), var = m.var.slice(1, a, b);
    torch::Tensor d = abs_moment(mu.unsqueeze(1) - mu.unsqueeze(0), var.unsqueeze(1) + var.unsqueeze(0));
    pair.slice(0, a, b).copy_((ww * d).sum(at::IntArrayRef{0, 1}));
  }
  return to_y - 0.5 * pair;
}

double crps(const Predictive& p, const torch::Tensor& y) { return crps_values(p, y).mean().item<double>(); }

}  // namespace credence
