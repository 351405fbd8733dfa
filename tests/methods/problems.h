#pragma once
// Small problems shared by the method tests.
#include <ATen/ATen.h>

#include <string>

#include "credence/credence.h"

namespace credence {

constexpr int64_t kConjugateRows = 60;

/// Bayesian linear regression: 60 rows of synthetic:linear (3 inputs, noise 0.5), the linear
/// model `mlp:`, fixed noise 0.5, prior precision 2, float64, full batch, so that every method's
/// answer can be checked against the closed-form posterior.
inline FitRequest conjugate_request(const std::string& method, int64_t epochs, double lr) {
  FitRequest req;
  req.data = load_data("synthetic:linear?n=60&d=3&noise=0.5", {torch::kFloat64});
  req.model = "mlp:";
  req.likelihood = "gaussian?sigma=0.5";
  req.dtype = torch::kFloat64;
  req.train.prior = "2";
  req.train.batch_size = kConjugateRows;  // full batch: each step sees every example
  req.train.epochs = epochs;
  req.train.lr = lr;
  req.train.quiet = true;
  req.method = method;
  return req;
}

/// The exact posterior of conjugate_request's problem (fixed noise 0.5, prior precision 2) in
/// standardized units: mean and covariance over [W, b].
struct LinearPosterior {
  torch::Tensor mean, cov;
};
inline LinearPosterior exact_linear_posterior(const Dataset& raw) {
  auto data = Standardizer::fit(raw).apply(raw);
  auto X1 = at::cat({data.x, at::ones({data.size(), 1}, at::kDouble)}, 1);
  auto cov = at::inverse(X1.t().mm(X1) / 0.25 + 2.0 * at::eye(X1.size(1), at::kDouble));
  return {cov.mv(X1.t().mv(data.y)) / 0.25, cov};
}

/// `method` fitted quietly in float64 on the 1-D sine of `spec` (e.g. "synthetic:sine?n=40").
inline FitRequest sine_request(const std::string& method, const std::string& spec) {
  FitRequest req;
  req.data = load_data(spec, {torch::kFloat64});
  req.dtype = torch::kFloat64;
  req.method = method;
  req.train.quiet = true;
  return req;
}

/// Two-moons classification with a small network, 10 epochs: quick fits of any method.
inline FitRequest moons_request(const std::string& method) {
  FitRequest req;
  req.data = load_data("synthetic:moons?n=200");
  req.model = "mlp:16";
  req.train.epochs = 10;
  req.train.quiet = true;
  req.method = method;
  return req;
}

/// The parameter vectors of a particle posterior (members, particles, draws): [S, P].
inline torch::Tensor particles_of(const FittedModel& f) {
  return dynamic_cast<const ParticlePosterior&>(*f.posterior).particles();
}

}  // namespace credence
