// Validated float64 views of a Predictive and its targets, shared by the metrics.
#include "inputs.h"

#include <fmt/format.h>

#include <cmath>
#include <limits>

#include "credence/core/error.h"

namespace credence::eval_detail {

const char* task_name(Task task) { return task == Task::Classification ? "classification" : "regression"; }

void require_task(const Predictive& p, Task want, const char* fn) {
  if (p.task != want)
    throw InvalidArgument(
        fmt::format("{}: needs a {} predictive, got a {} one", fn, task_name(want), task_name(p.task)));
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

torch::Tensor mixture_weights(const torch::Tensor& w, int64_t S, torch::Device device, const char* fn) {
  auto opts = at::TensorOptions().dtype(at::kDouble).device(device);
  if (!w.defined()) return at::full({S}, 1.0 / static_cast<double>(S), opts);
  if (w.dim() != 1 || w.size(0) != S)
    throw InvalidArgument(
        fmt::format("{}: weights have shape {}, expected [{}] (one per sample)", fn, shape_of(w), S));
  torch::Tensor wd = w.detach().to(device, at::kDouble);
  require_finite(wd, fn, "weights");
  if ((wd < 0).any().item<bool>()) throw InvalidArgument(fmt::format("{}: weights must be non-negative", fn));
  double total = wd.sum().item<double>();
  if (std::abs(total - 1.0) > 1e-4)
    throw InvalidArgument(fmt::format("{}: weights sum to {}, expected 1", fn, total));
  return wd / total;
}

torch::Tensor class_probs(const Predictive& p, const char* fn) {
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
    throw InvalidArgument(
        fmt::format("{}: probs have shape {}, expected non-empty [N, C]", fn, shape_of(probs)));
  require_finite(probs, fn, "probs");
  return probs;
}

torch::Tensor class_labels(const torch::Tensor& y, int64_t N, int64_t C, torch::Device device,
                           const char* fn) {
  if (!y.defined() || y.dim() != 1 || y.size(0) != N)
    throw InvalidArgument(fmt::format("{}: labels have shape {}, expected [{}] to match probs", fn,
                                      y.defined() ? shape_of(y) : "undefined", N));
  if (at::isFloatingType(y.scalar_type()) || y.scalar_type() == at::kBool)
    throw InvalidArgument(
        fmt::format("{}: labels must be integers (int64), got {}", fn, c10::toString(y.scalar_type())));
  torch::Tensor labels = y.detach().to(device, at::kLong);
  int64_t lo = labels.min().item<int64_t>(), hi = labels.max().item<int64_t>();
  if (lo < 0 || hi >= C)
    throw InvalidArgument(fmt::format("{}: label {} is out of range [0, {})", fn, lo < 0 ? lo : hi, C));
  return labels;
}

std::pair<torch::Tensor, torch::Tensor> classification_inputs(const Predictive& p, const torch::Tensor& y,
                                                              const char* fn) {
  torch::Tensor probs = class_probs(p, fn);
  return {probs, class_labels(y, probs.size(0), probs.size(1), probs.device(), fn)};
}

Mixture regression_mixture(const Predictive& p, const char* fn) {
  require_task(p, Task::Regression, fn);
  Mixture m;
  if (p.sample_mean.defined()) {
    if (!p.sample_var.defined() || p.sample_mean.dim() != 2 ||
        !p.sample_var.sizes().equals(p.sample_mean.sizes()) || p.sample_mean.size(0) == 0)
      throw InvalidArgument(fmt::format(
          "{}: sample_mean {} and sample_var {} must both be [S, N] with S >= 1", fn, shape_of(p.sample_mean),
          p.sample_var.defined() ? shape_of(p.sample_var) : "undefined"));
    m.mean = p.sample_mean.detach().to(at::kDouble);
    m.var = p.sample_var.detach().to(m.mean.device(), at::kDouble);
  } else {
    if (!p.mean.defined() || !p.var.defined() || p.mean.dim() != 1 || !p.var.sizes().equals(p.mean.sizes()))
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

torch::Tensor point_mean(const Predictive& p, const char* fn) {
  require_task(p, Task::Regression, fn);
  torch::Tensor mu;
  if (p.mean.defined()) {
    if (p.mean.dim() != 1)
      throw InvalidArgument(fmt::format("{}: mean has shape {}, expected [N]", fn, shape_of(p.mean)));
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

torch::Tensor regression_targets(const torch::Tensor& y, int64_t N, torch::Device device, const char* fn) {
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

torch::Tensor mixture_cdf(const Mixture& m, const torch::Tensor& y) {
  return (m.w.unsqueeze(1) * normal_cdf((y.unsqueeze(0) - m.mean) / m.var.sqrt())).sum(0);
}

torch::Tensor mixture_quantile(const Mixture& m, double q) {
  const double z = std::sqrt(2.0) * at::erfinv(at::scalar_tensor(2.0 * q - 1.0, at::kDouble)).item<double>();
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

}  // namespace credence::eval_detail
