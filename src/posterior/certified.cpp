#include "credence/posterior/certified.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <cmath>

#include "credence/core/error.h"
#include "credence/core/rng.h"
#include "credence/eval/pacbayes.h"

namespace credence {

CertifiedGaussianPosterior::CertifiedGaussianPosterior(torch::Tensor mean, torch::Tensor variance,
                                                       torch::Tensor prior_mean, double prior_std,
                                                       torch::Tensor prior_rows)
    : GaussianPosterior(std::move(mean), std::move(variance)),
      prior_mean_(prior_mean.detach()),
      prior_rows_(prior_rows.defined() ? prior_rows.to(at::kCPU, at::kLong) : at::empty({0}, at::kLong)),
      prior_std_(prior_std) {
  if (prior_mean_.sizes() != this->mean().sizes())
    throw InvalidArgument("certified posterior: prior mean and posterior mean differ in shape");
  if (!(prior_std_ > 0)) throw InvalidArgument(fmt::format("prior std must be > 0, got {}", prior_std_));
}

CertifiedGaussianPosterior::CertifiedGaussianPosterior(torch::Tensor mean, torch::Tensor variance,
                                                       torch::Tensor prior_mean, torch::Tensor prior_variance,
                                                       torch::Tensor prior_rows)
    : CertifiedGaussianPosterior(std::move(mean), std::move(variance), std::move(prior_mean),
                                 std::sqrt(prior_variance.to(at::kDouble).mean().item<double>()),
                                 std::move(prior_rows)) {
  if (prior_variance.sizes() != this->mean().sizes() || !(prior_variance > 0).all().item<bool>())
    throw InvalidArgument("certified posterior: the prior variance must be > 0 and shaped as the mean");
  prior_variance_ = prior_variance.detach();
}

void CertifiedGaussianPosterior::save(TensorMap& tensors, nlohmann::json& meta) const {
  GaussianPosterior::save(tensors, meta);
  tensors["posterior.prior_mean"] = prior_mean_;
  tensors["posterior.prior_rows"] = prior_rows_;
  meta["prior_std"] = prior_std_;
  if (prior_variance_.defined()) tensors["posterior.prior_variance"] = prior_variance_;
}

std::unique_ptr<CertifiedGaussianPosterior> CertifiedGaussianPosterior::load(const TensorMap& tensors,
                                                                             const nlohmann::json& meta) {
  auto get = [&](const std::string& name) { return posterior_tensor(tensors, name); };
  if (!meta.contains("prior_std")) throw IoError("certified posterior file lacks its prior_std");
  if (tensors.count("posterior.prior_variance"))
    return std::make_unique<CertifiedGaussianPosterior>(get("posterior.mean"), get("posterior.variance"),
                                                        get("posterior.prior_mean"), get("posterior.prior_variance"),
                                                        get("posterior.prior_rows"));
  return std::make_unique<CertifiedGaussianPosterior>(get("posterior.mean"), get("posterior.variance"),
                                                      get("posterior.prior_mean"), meta["prior_std"].get<double>(),
                                                      get("posterior.prior_rows"));
}

torch::Tensor kl_to_isotropic_gaussian(const torch::Tensor& mean, const torch::Tensor& variance,
                                       const torch::Tensor& prior_mean, double prior_std) {
  return kl_to_diagonal_gaussian(mean, variance, prior_mean, at::full({}, prior_std * prior_std, variance.options()));
}

torch::Tensor kl_to_diagonal_gaussian(const torch::Tensor& mean, const torch::Tensor& variance,
                                      const torch::Tensor& prior_mean, const torch::Tensor& prior_variance) {
  // 0.5 * sum(v / s^2 + (m - m0)^2 / s^2 - 1 - log(v / s^2))
  auto ratio = variance / prior_variance;
  return 0.5 * (ratio + (mean - prior_mean).pow(2) / prior_variance - 1.0 - at::log(ratio)).sum();
}

Dataset CertifiedGaussianPosterior::unseen_rows(const Dataset& train, int64_t n_fit) const {
  if (prior_rows_.size(0) == 0) return train;
  if (train.size() != n_fit)
    throw DataError(fmt::format("the training data now has {} rows but had {} when fitted; the prior's rows no "
                                "longer identify the rows it never saw",
                                train.size(), n_fit));
  auto keep = at::ones({train.size()}, at::kBool);
  keep.index_fill_(0, prior_rows_.to(at::kCPU), false);
  return train.subset(keep.nonzero().squeeze(1));
}

double fitted_pmin(const nlohmann::json& fit_info) {
  const auto options = fit_info.value("method_options", nlohmann::json::object());
  return std::stod(options.value("pmin", std::string("1e-4")));
}

double CertifiedGaussianPosterior::kl() const {
  if (prior_variance_.defined())
    return kl_to_diagonal_gaussian(mean().to(at::kDouble), variance().to(at::kDouble), prior_mean_.to(at::kDouble),
                                   prior_variance_.to(at::kDouble))
        .item<double>();
  return kl_to_isotropic_gaussian(mean().to(at::kDouble), variance().to(at::kDouble),
                                  prior_mean_.to(at::kDouble), prior_std_)
      .item<double>();
}

torch::Tensor bounded_cross_entropy(const torch::Tensor& logits, const torch::Tensor& y, double pmin) {
  auto log_p = at::log_softmax(logits, -1).gather(-1, y.unsqueeze(-1)).squeeze(-1);
  return -at::clamp_min(log_p, std::log(pmin)) / std::log(1.0 / pmin);
}

namespace {
// Rows per stacked forward: each holds its own parameter vector, so this sizes the buffer.
constexpr int64_t kRowsPerChunk = 64;
}  // namespace

StochasticRisk stochastic_risk(const Model& model, const torch::Tensor& mean, const torch::Tensor& sd,
                               const torch::Tensor& x, const torch::Tensor& y, int64_t rounds, double pmin,
                               uint64_t seed) {
  if (rounds < 1) throw InvalidArgument(fmt::format("rounds must be >= 1, got {}", rounds));
  at::NoGradGuard no_grad;
  const int64_t n = x.size(0), P = mean.size(0);
  const auto device = model.device();
  auto draws = at::empty({std::min(kRowsPerChunk, n), P}, at::TensorOptions().dtype(model.dtype()));
  auto thetas = device.is_cpu() ? draws : at::empty_like(draws, draws.options().device(device));
  auto m = mean.to(device, model.dtype()), s = sd.to(device, model.dtype());
  double errors = 0, ce = 0;
  for (int64_t r = 0; r < rounds; ++r) {
    for (int64_t start = 0, chunk = 0; start < n; start += kRowsPerChunk, ++chunk) {
      const int64_t b = std::min(kRowsPerChunk, n - start);
      auto gen = cpu_generator(rng_key(seed, Stream::Sample, r, chunk));
      auto eps = draws.narrow(0, 0, b);
      eps.normal_(0.0, 1.0, gen);
      auto theta = thetas.narrow(0, 0, b);
      if (!device.is_cpu()) theta.copy_(eps);
      theta.mul_(s).add_(m);
      auto xb = x.narrow(0, start, b).to(device, model.dtype()).unsqueeze(1);  // one row per network
      auto logits = model.forward(xb, theta).squeeze(1);
      auto yb = y.narrow(0, start, b).to(device);
      errors += (logits.argmax(-1) != yb).sum().item<double>();
      ce += bounded_cross_entropy(logits.to(at::kDouble), yb, pmin).sum().item<double>();
    }
  }
  const double total = static_cast<double>(rounds * n);
  return {errors / total, ce / total, rounds * n};
}

nlohmann::json Certificate::to_json() const {
  return {{"bound", error_bound},
          {"error_bound", error_bound},
          {"error_estimate", error_estimate},
          {"error_empirical_bound", error_empirical_bound},
          {"ce_bound", ce_bound},
          {"ce_estimate", ce_estimate},
          {"ce_empirical_bound", ce_empirical_bound},
          {"kl", kl},
          {"n", n},
          {"networks", networks},
          {"delta", delta},
          {"delta_mc", delta_mc},
          {"pmin", pmin}};
}

Certificate certify(const CertifiedGaussianPosterior& posterior, const Model& model, const torch::Tensor& x,
                    const torch::Tensor& y, const CertifyOptions& options) {
  const int64_t n = x.size(0);
  if (n == 0) throw InvalidArgument("a certificate needs at least one example not seen by the prior");
  if (options.networks < 1)
    throw InvalidArgument(fmt::format("networks must be >= 1, got {}", options.networks));
  if (!(options.pmin > 0 && options.pmin < 1))
    throw InvalidArgument(fmt::format("pmin must be in (0, 1), got {}", options.pmin));
  Certificate c;
  c.n = n;
  c.kl = posterior.kl();
  c.delta = options.delta;
  c.delta_mc = options.delta_mc;
  c.pmin = options.pmin;
  const int64_t rounds = (options.networks + n - 1) / n;
  auto risk = stochastic_risk(model, posterior.mean(), posterior.variance().sqrt(), x, y, rounds, options.pmin,
                              options.seed);
  c.networks = risk.networks;
  c.error_estimate = risk.error;
  c.ce_estimate = risk.cross_entropy;
  c.error_empirical_bound = sampled_risk_bound(risk.error, c.networks, options.delta_mc);
  c.ce_empirical_bound = sampled_risk_bound(risk.cross_entropy, c.networks, options.delta_mc);
  c.error_bound = pacbayes_bound(PacBayesBound::Seeger, c.error_empirical_bound, c.kl, n, options.delta);
  c.ce_bound = pacbayes_bound(PacBayesBound::Seeger, c.ce_empirical_bound, c.kl, n, options.delta);
  return c;
}

}  // namespace credence
