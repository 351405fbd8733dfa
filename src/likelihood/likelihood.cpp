#include "credence/likelihood/likelihood.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <cmath>

#include "credence/core/error.h"
#include "credence/core/spec.h"

namespace credence {
namespace {
constexpr double kHalfLog2Pi = 0.91893853320467274178;

torch::Tensor hetero_var(const torch::Tensor& raw) { return at::softplus(raw) + 1e-6; }
}  // namespace

Likelihood Likelihood::parse(const std::string& name, const Dataset& data) {
  Likelihood l;
  Spec spec = Spec::parse(name.empty() ? (data.task == Task::Regression ? "gaussian" : "categorical") : name);
  if (!spec.body.empty())
    throw InvalidArgument(fmt::format("likelihood '{}': options go after '?', e.g. gaussian?sigma=0.1", name));
  if (spec.scheme == "gaussian") {
    l.kind = LikelihoodKind::Gaussian;
    spec.check_keys({"sigma"}, false);
    if (spec.has("sigma")) {
      l.sigma = spec.get_double("sigma", 1.0);
      l.learn_sigma = false;
      if (!(l.sigma > 0)) throw InvalidArgument(fmt::format("likelihood '{}': sigma must be > 0", name));
    }
  } else if (spec.scheme == "heteroscedastic") {
    l.kind = LikelihoodKind::Heteroscedastic;
  } else if (spec.scheme == "categorical") {
    l.kind = LikelihoodKind::Categorical;
  } else if (spec.scheme == "bernoulli") {
    l.kind = LikelihoodKind::Bernoulli;
  } else {
    throw InvalidArgument(fmt::format(
        "unknown likelihood '{}' (known: gaussian[?sigma=S], heteroscedastic, categorical, bernoulli)", name));
  }
  if (l.task() != data.task)
    throw InvalidArgument(fmt::format("likelihood '{}' does not fit the {} data '{}'", l.name(),
                                      to_string(data.task), data.name));
  if (l.kind == LikelihoodKind::Bernoulli && data.num_classes != 2)
    throw InvalidArgument(fmt::format("likelihood bernoulli needs 2 classes, '{}' has {} (use categorical)",
                                      data.name, data.num_classes));
  return l;
}

std::string Likelihood::name() const {
  switch (kind) {
    case LikelihoodKind::Gaussian: return learn_sigma ? "gaussian" : fmt::format("gaussian?sigma={}", sigma);
    case LikelihoodKind::Heteroscedastic: return "heteroscedastic";
    case LikelihoodKind::Categorical: return "categorical";
    case LikelihoodKind::Bernoulli: return "bernoulli";
  }
  return "?";
}

Task Likelihood::task() const {
  return kind == LikelihoodKind::Gaussian || kind == LikelihoodKind::Heteroscedastic ? Task::Regression
                                                                                      : Task::Classification;
}

int64_t Likelihood::output_dim(const Dataset& data) const {
  switch (kind) {
    case LikelihoodKind::Gaussian: return 1;
    case LikelihoodKind::Heteroscedastic: return 2;
    case LikelihoodKind::Categorical: return data.num_classes;
    case LikelihoodKind::Bernoulli: return 1;
  }
  return 0;
}

torch::Tensor Likelihood::nll(const torch::Tensor& out, const torch::Tensor& y,
                              const torch::Tensor& log_sigma) const {
  return nll_stacked(out.unsqueeze(0), y, log_sigma).squeeze(0);
}

torch::Tensor Likelihood::nll_stacked(const torch::Tensor& out, const torch::Tensor& y,
                                      const torch::Tensor& log_sigma) const {
  const int64_t n = y.size(-1);  // y is [N], shared, or [S, N], one target set per sample
  switch (kind) {
    case LikelihoodKind::Gaussian: {
      auto ls = log_sigma.defined() ? log_sigma : at::full({}, std::log(sigma), out.options());
      auto r = (out.select(-1, 0) - y) * at::exp(-ls);
      return 0.5 * r.pow(2).sum(-1) + n * (ls + kHalfLog2Pi);
    }
    case LikelihoodKind::Heteroscedastic: {
      auto var = hetero_var(out.select(-1, 1));
      return (0.5 * (out.select(-1, 0) - y).pow(2) / var + 0.5 * at::log(var)).sum(-1) + n * kHalfLog2Pi;
    }
    case LikelihoodKind::Categorical: {
      auto logp = at::log_softmax(out, -1);
      auto idx = y.dim() == 2 ? y.unsqueeze(-1) : y.view({1, n, 1}).expand({out.size(0), n, 1});
      return -logp.gather(-1, idx).squeeze(-1).sum(-1);
    }
    case LikelihoodKind::Bernoulli: {
      auto f = out.select(-1, 0);
      auto t = (y.dim() == 2 ? y : y.unsqueeze(0)).to(f.scalar_type()).expand_as(f);
      return at::binary_cross_entropy_with_logits(f, t, {}, {}, at::Reduction::None).sum(-1);
    }
  }
  return {};
}

double Likelihood::nll_and_grad(const torch::Tensor& out, const torch::Tensor& y, double log_sigma,
                                torch::Tensor& d_out, double* d_log_sigma) const {
  const int64_t n = y.size(0);
  if (!d_out.defined() || d_out.sizes() != out.sizes() || d_out.dtype() != out.dtype()) d_out = at::empty_like(out);
  if (d_log_sigma) *d_log_sigma = 0.0;
  switch (kind) {
    case LikelihoodKind::Gaussian: {  // |r|^2 / (2 sigma^2) + N (log sigma + log(2 pi) / 2), r = out - y
      at::sub_out(d_out, out, y.reshape({n, 1}));
      const double inv_var = std::exp(-2.0 * log_sigma);
      const double ss = at::dot(d_out.view({-1}), d_out.view({-1})).item<double>();
      if (d_log_sigma) *d_log_sigma = static_cast<double>(n) - ss * inv_var;
      d_out.mul_(inv_var);
      return 0.5 * ss * inv_var + static_cast<double>(n) * (log_sigma + kHalfLog2Pi);
    }
    case LikelihoodKind::Heteroscedastic: {
      auto raw = out.select(1, 1);
      auto var = hetero_var(raw);
      auto r = out.select(1, 0) - y;
      auto r_over_var = r / var;
      const double value = (0.5 * r * r_over_var + 0.5 * at::log(var)).sum().item<double>() + n * kHalfLog2Pi;
      d_out.select(1, 0).copy_(r_over_var);
      // d/dvar = (1 / var - r^2 / var^2) / 2, and softplus' = sigmoid
      d_out.select(1, 1).copy_(0.5 * (var.reciprocal() - r_over_var * r_over_var) * at::sigmoid(raw));
      return value;
    }
    case LikelihoodKind::Categorical: {
      auto logp = at::log_softmax(out, 1);
      auto idx = y.reshape({n, 1});
      const double value = -logp.gather(1, idx).sum().item<double>();
      at::exp_out(d_out, logp);  // softmax minus the one-hot targets
      d_out.scatter_add_(1, idx, at::full({n, 1}, -1.0, out.options()));
      return value;
    }
    case LikelihoodKind::Bernoulli: {
      auto f = out.select(1, 0);
      auto t = y.to(f.scalar_type());
      const double value =
          at::binary_cross_entropy_with_logits(f, t, {}, {}, at::Reduction::Sum).item<double>();
      at::sigmoid_out(d_out, out).select(1, 0).sub_(t);
      return value;
    }
  }
  return 0.0;
}

Predictive Likelihood::predictive(const torch::Tensor& out, double y_mean, double y_std,
                                  const torch::Tensor& weights, const torch::Tensor& sample_sigma) const {
  Predictive p;
  p.task = task();
  const int64_t S = out.size(0);
  auto w = weights.defined() ? weights.to(out.options())
                             : at::full({S}, 1.0 / S, out.options());
  if (weights.defined()) p.weights = w;
  if (p.task == Task::Classification) {
    auto probs = kind == LikelihoodKind::Bernoulli
                     ? [&] {
                         auto q = at::sigmoid(out.select(-1, 0));
                         return at::stack({1 - q, q}, -1);
                       }()
                     : at::softmax(out, -1);
    p.probs = (probs * w.view({S, 1, 1})).sum(0);
    if (S > 1) p.sample_probs = probs;
    return p;
  }
  auto m = out.select(-1, 0) * y_std + y_mean;
  auto v = kind == LikelihoodKind::Heteroscedastic ? hetero_var(out.select(-1, 1)) * (y_std * y_std)
           : sample_sigma.defined() ? (sample_sigma * y_std).pow(2).view({S, 1}).expand_as(m).contiguous()
                                    : at::full_like(m, sigma * sigma * y_std * y_std);
  auto wv = w.view({S, 1});
  p.mean = (m * wv).sum(0);
  p.var = (v * wv).sum(0) + ((m - p.mean).pow(2) * wv).sum(0);  // law of total variance
  if (S > 1) {
    p.sample_mean = m;
    p.sample_var = v;
  }
  return p;
}

}  // namespace credence
