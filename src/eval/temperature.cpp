#include "credence/eval/temperature.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <cmath>

#include "credence/core/error.h"
#include "inputs.h"

namespace credence {

using namespace eval_detail;

namespace {

double nll_at(const torch::Tensor& logp, const torch::Tensor& labels, double t) {
  torch::Tensor lp = at::log_softmax(logp / t, 1);
  return -lp.gather(1, labels.unsqueeze(1)).mean().item<double>();
}

}  // namespace

TemperatureFit fit_temperature(const Predictive& val, const torch::Tensor& y) {
  auto [probs, labels] = classification_inputs(val, y, "fit_temperature");
  torch::Tensor logp = probs.clamp_min(kProbFloor).log();
  const double phi = (std::sqrt(5.0) - 1.0) / 2.0;
  double a = std::log(1e-2), b = std::log(1e2);
  double c = b - phi * (b - a), d = a + phi * (b - a);
  double fc = nll_at(logp, labels, std::exp(c)), fd = nll_at(logp, labels, std::exp(d));
  while (b - a > 1e-9) {
    if (fc <= fd) {
      b = d, d = c, fd = fc;
      c = b - phi * (b - a);
      fc = nll_at(logp, labels, std::exp(c));
    } else {
      a = c, c = d, fc = fd;
      d = a + phi * (b - a);
      fd = nll_at(logp, labels, std::exp(d));
    }
  }
  TemperatureFit fit;
  fit.temperature = std::exp(0.5 * (a + b));
  fit.nll_before = nll_at(logp, labels, 1.0);
  fit.nll_after = nll_at(logp, labels, fit.temperature);
  return fit;
}

Predictive apply_temperature(const Predictive& p, double temperature) {
  if (!(temperature > 0.0) || !std::isfinite(temperature))
    throw InvalidArgument(
        fmt::format("apply_temperature: temperature must be positive and finite, got {}", temperature));
  torch::Tensor probs = class_probs(p, "apply_temperature");
  Predictive out;
  out.task = Task::Classification;
  out.probs = at::softmax(probs.clamp_min(kProbFloor).log() / temperature, 1)
                  .to(p.probs.defined() ? p.probs.scalar_type() : p.sample_probs.scalar_type());
  return out;
}

}  // namespace credence
