#pragma once
/// Temperature scaling (Guo et al. 2017), the non-Bayesian calibration baseline: one scalar T
/// rescales log-probabilities, softmax(log p / T), fitted by NLL on held-out labelled data.
#include "credence/eval/predictive.h"

namespace credence {

struct TemperatureFit {
  double temperature = 1.0;
  double nll_before = 0.0;  ///< NLL at T = 1
  double nll_after = 0.0;   ///< NLL at the fitted T
};

/// Minimizes the NLL of softmax(log p / T) over T in [1e-2, 1e2] by golden-section search on
/// log T (the NLL is unimodal in T: convex in 1/T), deterministic to ~1e-9 relative in T.
TemperatureFit fit_temperature(const Predictive& val, const torch::Tensor& y);

/// The predictive with probabilities softmax(log p / T) of the model-averaged p. Per-sample
/// probabilities are dropped: the result is a single calibrated distribution.
Predictive apply_temperature(const Predictive& p, double temperature);

}  // namespace credence
