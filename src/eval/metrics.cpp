#include "credence/eval/metrics.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <cmath>
#include <limits>

#include "credence/core/error.h"

// Every metric computes in float64 on the device of the predictive, and returns a host double.
namespace credence {

namespace {

constexpr double kProbFloor = 1e-12;
const double kLog2Pi = std::log(2.0 * 3.14159265358979323846);

const char* task_name(Task task) {
  return task == Task::Classification ? "classification" : "regression";
}

void require_task(const Predictive& p, Task want, const char* fn) {
  if (p.task != want)
    throw InvalidArgument(fmt::format("{}: needs a {} predictive, got a {} one", fn,
                                      task_name(want), task_name(p.task)));
}

std::string shape_of(const torch::Tensor& t) {
  std::string s = "[";
  for (int64_t d = 0; d < t.dim(); ++d) s += (d ? ", " : "") + std::to_string(t.size(d));
  return s + "]";
}

void require_finite(const torch::Tensor& t, const char* fn, const char* what) {
  if (!at::isfinite(t).all().item<bool>())
    throw InvalidArgument(fmt::format("{}: {} contains NaN or inf", fn, what));
}

/// Mixture weights as float64 [S] summing to 1 (uniform when `w` is undefined).
torch::Tensor mixture_weights(const torch::Tensor& w, int64_t S, torch::Device device,
                              const char* fn) {
  auto opts = at::TensorOptions().dtype(at::kDouble).device(device);
  if (!w.defined()) return at::full({S}, 1.0 / static_cast<double>(S), opts);
  if (w.dim() != 1 || w.size(0) != S)
    throw InvalidArgument(fmt::format("{}: weights have shape {}, expected [{}] (one per sample)",
                                      fn, shape_of(w), S));
  torch::Tensor wd = w.detach().to(device, at::kDouble);
  require_finite(wd, fn, "weights");
  if ((wd < 0).any().item<bool>())
    throw InvalidArgument(fmt::format("{}: weights must be non-negative", fn));
  double total = wd.sum().item<double>();
  if (std::abs(total - 1.0) > 1e-4)
    throw InvalidArgument(fmt::format("{}: weights sum to {}, expected 1", fn, total));
  return wd / total;
}

/// Class probabilities [N, C] float64 and labels int64 [N], validated.
std::pair<torch::Tensor, torch::Tensor> classification_inputs(const Predictive& p,
                                                              const torch::Tensor& y,
                                                              const char* fn) {
  require_task(p, Task::Classification, fn);
  torch::Tensor probs;
  if (p.probs.defined()) {
    probs = p.probs.detach().to(at::kDouble);
  } else if (p.sample_probs.defined() && p.sample_probs.dim() == 3) {
    torch::Tensor sp = p.sample_probs.detach().to(at::kDouble);
    torch::Tensor w = mixture_weights(p.weights, sp.size(0), sp.device(), fn);
    probs = (sp * w.view({-1, 1, 1})).sum(0);
  } else {
    throw InvalidArgument(fmt::format("{}: the predictive has no class probabilities", fn));
  }
  if (probs.dim() != 2 || probs.size(0) == 0 || probs.size(1) == 0)
    throw InvalidArgument(fmt::format("{}: probs have shape {}, expected non-empty [N, C]", fn,
                                      shape_of(probs)));
  require_finite(probs, fn, "probs");
  const int64_t N = probs.size(0), C = probs.size(1);
  if (!y.defined() || y.dim() != 1 || y.size(0) != N)
    throw InvalidArgument(fmt::format("{}: labels have shape {}, expected [{}] to match probs {}",
                                      fn, y.defined() ? shape_of(y) : "undefined", N,
                                      shape_of(probs)));
  if (at::isFloatingType(y.scalar_type()) || y.scalar_type() == at::kBool)
    throw InvalidArgument(fmt::format("{}: labels must be integers (int64), got {}", fn,
                                      c10::toString(y.scalar_type())));
  torch::Tensor labels = y.detach().to(probs.device(), at::kLong);
  int64_t lo = labels.min().item<int64_t>(), hi = labels.max().item<int64_t>();
  if (lo < 0 || hi >= C)
    throw InvalidArgument(fmt::format("{}: label {} is out of range [0, {})", fn,
                                      lo < 0 ? lo : hi, C));
  return {probs, labels};
}

/// Regression predictive as a mixture: means and variances float64 [S, N], weights [S].
struct Mixture {
  torch::Tensor mean, var, w;
};

Mixture regression_mixture(const Predictive& p, const char* fn) {
  require_task(p, Task::Regression, fn);
  Mixture m;
  if (p.sample_mean.defined()) {
    if (!p.sample_var.defined() || p.sample_mean.dim() != 2 ||
        !p.sample_var.sizes().equals(p.sample_mean.sizes()) || p.sample_mean.size(0) == 0)
      throw InvalidArgument(fmt::format(
          "{}: sample_mean {} and sample_var {} must both be [S, N] with S >= 1", fn,
          shape_of(p.sample_mean), p.sample_var.defined() ? shape_of(p.sample_var) : "undefined"));
    m.mean = p.sample_mean.detach().to(at::kDouble);
    m.var = p.sample_var.detach().to(m.mean.device(), at::kDouble);
  } else {
    if (!p.mean.defined() || !p.var.defined() || p.mean.dim() != 1 ||
        !p.var.sizes().equals(p.mean.sizes()))
      throw InvalidArgument(fmt::format("{}: mean {} and var {} must both be defined [N]", fn,
                                        p.mean.defined() ? shape_of(p.mean) : "undefined",
                                        p.var.defined() ? shape_of(p.var) : "undefined"));
    m.mean = p.mean.detach().to(at::kDouble).unsqueeze(0);
    m.var = p.var.detach().to(m.mean.device(), at::kDouble).unsqueeze(0);
  }
  if (m.mean.size(1) == 0) throw InvalidArgument(fmt::format("{}: the predictive is empty", fn));
  require_finite(m.mean, fn, "the predictive mean");
  require_finite(m.var, fn, "the predictive variance");
  if ((m.var <= 0).any().item<bool>())
    throw InvalidArgument(fmt::format("{}: predictive variances must be positive", fn));
  m.w = mixture_weights(p.weights, m.mean.size(0), m.mean.device(), fn);
  return m;
}

/// Point prediction [N] float64: the stored mean, or the mixture mean.
torch::Tensor point_mean(const Predictive& p, const char* fn) {
  require_task(p, Task::Regression, fn);
  torch::Tensor mu;
  if (p.mean.defined()) {
    if (p.mean.dim() != 1)
      throw InvalidArgument(fmt::format("{}: mean has shape {}, expected [N]", fn,
                                        shape_of(p.mean)));
    mu = p.mean.detach().to(at::kDouble);
  } else if (p.sample_mean.defined() && p.sample_mean.dim() == 2) {
    torch::Tensor sm = p.sample_mean.detach().to(at::kDouble);
    mu = (sm * mixture_weights(p.weights, sm.size(0), sm.device(), fn).unsqueeze(1)).sum(0);
  } else {
    throw InvalidArgument(fmt::format("{}: the predictive has no mean", fn));
  }
  if (mu.size(0) == 0) throw InvalidArgument(fmt::format("{}: the predictive is empty", fn));
  require_finite(mu, fn, "the predictive mean");
  return mu;
}

/// Regression targets as float64 [N] on `device`, validated.
torch::Tensor regression_targets(const torch::Tensor& y, int64_t N, torch::Device device,
                                 const char* fn) {
  if (!y.defined() || y.dim() != 1 || y.size(0) != N)
    throw InvalidArgument(fmt::format("{}: targets have shape {}, expected [{}]", fn,
                                      y.defined() ? shape_of(y) : "undefined", N));
  if (y.scalar_type() == at::kBool)
    throw InvalidArgument(fmt::format("{}: targets must be numeric, got bool", fn));
  torch::Tensor yd = y.detach().to(device, at::kDouble);
  require_finite(yd, fn, "targets");
  return yd;
}

torch::Tensor normal_cdf(const torch::Tensor& z) { return 0.5 * at::erfc(-z / std::sqrt(2.0)); }

torch::Tensor quantile_of(const Mixture& m, double q) {
  const double z = std::sqrt(2.0) *
                   at::erfinv(at::scalar_tensor(2.0 * q - 1.0, at::kDouble)).item<double>();
  torch::Tensor sd = m.var.sqrt();
  torch::Tensor comp_q = m.mean + sd * z;  // [S, N] per-component quantiles
  if (m.mean.size(0) == 1) return comp_q[0];
  // The mixture quantile lies between the smallest and largest component quantile
  // (ignoring zero-weight components): F(lo) <= q <= F(hi).
  torch::Tensor absent = (m.w <= 0).unsqueeze(1);
  const double inf = std::numeric_limits<double>::infinity();
  torch::Tensor lo = comp_q.masked_fill(absent, inf).amin(0);
  torch::Tensor hi = comp_q.masked_fill(absent, -inf).amax(0);
  torch::Tensor w = m.w.unsqueeze(1);
  torch::Tensor scale = sd.masked_fill(absent, 0.0).amax(0);
  for (int it = 0; it < 100; ++it) {
    torch::Tensor mid = 0.5 * (lo + hi);
    torch::Tensor below = (w * normal_cdf((mid - m.mean) / sd)).sum(0) < q;
    lo = at::where(below, mid, lo);
    hi = at::where(below, hi, mid);
    if (it % 10 == 9) {
      torch::Tensor tol = 1e-13 * at::maximum(at::maximum(lo.abs(), hi.abs()), scale);
      if (((hi - lo) <= tol).all().item<bool>()) break;
    }
  }
  return 0.5 * (lo + hi);
}

void require_probability(double v, const char* fn, const char* what) {
  if (!(v > 0.0 && v < 1.0))
    throw InvalidArgument(fmt::format("{}: {} must be in (0, 1), got {}", fn, what, v));
}

}  // namespace

double accuracy(const Predictive& p, const torch::Tensor& y) {
  auto [probs, labels] = classification_inputs(p, y, "accuracy");
  return probs.argmax(1).eq(labels).to(at::kDouble).mean().item<double>();
}

double classification_nll(const Predictive& p, const torch::Tensor& y) {
  auto [probs, labels] = classification_inputs(p, y, "classification_nll");
  torch::Tensor py = probs.gather(1, labels.unsqueeze(1)).squeeze(1);
  return -py.clamp_min(kProbFloor).log().mean().item<double>();
}

double ece(const Predictive& p, const torch::Tensor& y, int bins) {
  if (bins < 1) throw InvalidArgument(fmt::format("ece: bins must be >= 1, got {}", bins));
  auto [probs, labels] = classification_inputs(p, y, "ece");
  auto [conf, pred] = probs.max(1);
  torch::Tensor correct = pred.eq(labels).to(at::kDouble);
  // Right-closed bins (b/B, (b+1)/B], with 0 in the first: the bin index is the number of
  // interior boundaries strictly below the confidence.
  torch::Tensor boundaries =
      at::arange(1, bins, at::TensorOptions().dtype(at::kDouble).device(conf.device())) /
      static_cast<double>(bins);
  torch::Tensor bin = at::bucketize(conf, boundaries, /*out_int32=*/false, /*right=*/false);
  auto opts = conf.options();
  torch::Tensor conf_sum = at::zeros({bins}, opts).index_add_(0, bin, conf);
  torch::Tensor acc_sum = at::zeros({bins}, opts).index_add_(0, bin, correct);
  // sum_b (n_b / N) |acc_b - conf_b| = sum_b |acc_sum_b - conf_sum_b| / N
  return ((acc_sum - conf_sum).abs().sum() / static_cast<double>(conf.size(0))).item<double>();
}

double brier(const Predictive& p, const torch::Tensor& y) {
  auto [probs, labels] = classification_inputs(p, y, "brier");
  torch::Tensor onehot = at::zeros_like(probs).scatter_(1, labels.unsqueeze(1), 1.0);
  return (probs - onehot).pow(2).sum(1).mean().item<double>();
}

double rmse(const Predictive& p, const torch::Tensor& y) {
  torch::Tensor mu = point_mean(p, "rmse");
  torch::Tensor yd = regression_targets(y, mu.size(0), mu.device(), "rmse");
  return (mu - yd).pow(2).mean().sqrt().item<double>();
}

double regression_nll(const Predictive& p, const torch::Tensor& y) {
  Mixture m = regression_mixture(p, "regression_nll");
  torch::Tensor yd = regression_targets(y, m.mean.size(1), m.mean.device(), "regression_nll");
  torch::Tensor log_pdf = -0.5 * (kLog2Pi + m.var.log() + (yd.unsqueeze(0) - m.mean).pow(2) / m.var);
  torch::Tensor log_mix = at::logsumexp(log_pdf + m.w.log().unsqueeze(1), 0);
  return -log_mix.mean().item<double>();
}

torch::Tensor predictive_quantile(const Predictive& p, double q) {
  require_probability(q, "predictive_quantile", "the quantile level q");
  return quantile_of(regression_mixture(p, "predictive_quantile"), q);
}

double coverage(const Predictive& p, const torch::Tensor& y, double level) {
  require_probability(level, "coverage", "the interval level");
  Mixture m = regression_mixture(p, "coverage");
  torch::Tensor yd = regression_targets(y, m.mean.size(1), m.mean.device(), "coverage");
  torch::Tensor lo = quantile_of(m, 0.5 * (1.0 - level));
  torch::Tensor hi = quantile_of(m, 0.5 * (1.0 + level));
  return ((yd >= lo) & (yd <= hi)).to(at::kDouble).mean().item<double>();
}

std::map<std::string, double> standard_metrics(const Predictive& p, const torch::Tensor& y,
                                               int ece_bins) {
  if (p.task == Task::Classification)
    return {{"accuracy", accuracy(p, y)},
            {"nll", classification_nll(p, y)},
            {"ece", ece(p, y, ece_bins)},
            {"brier", brier(p, y)}};
  return {{"rmse", rmse(p, y)}, {"nll", regression_nll(p, y)}, {"coverage_90", coverage(p, y, 0.9)}};
}

}  // namespace credence
