#pragma once
/// Calibration diagnostics beyond the scalar metrics in metrics.h.
#include <vector>

#include "credence/eval/predictive.h"

namespace credence {

// Classification. Bins are equal-width and right-closed, (b/B, (b+1)/B] with 0 in the first,
// exactly as ece() bins them.

/// Per-bin data of a top-label reliability diagram; an empty bin has count 0 and zeros.
struct ReliabilityDiagram {
  std::vector<double> edges;            ///< B + 1 bin edges, 0 to 1
  std::vector<int64_t> count;           ///< examples per bin (the confidence histogram)
  std::vector<double> mean_confidence;  ///< mean top-label probability per bin
  std::vector<double> accuracy;         ///< fraction correct per bin
};
ReliabilityDiagram reliability_diagram(const Predictive& p, const torch::Tensor& y, int bins = 15);
/// Examples per top-label confidence bin; needs no labels.
std::vector<int64_t> confidence_histogram(const Predictive& p, int bins = 15);
/// Maximum calibration error: the largest |accuracy - confidence| over non-empty bins.
double mce(const Predictive& p, const torch::Tensor& y, int bins = 15);
/// Class-wise ECE (Kull et al. 2019): the mean over classes c of the binned calibration error of
/// p_c against 1[y = c], over all examples.
double classwise_ece(const Predictive& p, const torch::Tensor& y, int bins = 15);

// Regression (y in original units).

/// Probability integral transform F_i(y_i) of each target under its predictive mixture: [N].
torch::Tensor pit_values(const Predictive& p, const torch::Tensor& y);
/// Fraction of PIT values per equal-width bin of [0, 1] (flat at 1/bins when calibrated).
std::vector<double> pit_histogram(const Predictive& p, const torch::Tensor& y, int bins = 10);
/// Mean over q = 1/(L+1), ..., L/(L+1) of |fraction of y_i <= q-quantile_i - q|.
double quantile_calibration_error(const Predictive& p, const torch::Tensor& y, int levels = 19);
/// coverage() at each central-interval level, in the same order.
std::vector<double> coverage_at(const Predictive& p, const torch::Tensor& y,
                                const std::vector<double>& levels);
/// Continuous ranked probability score, averaged over examples (lower is better; same units as
/// y). Closed form for Gaussian mixtures: E|X - y| - E|X - X'| / 2.
double crps(const Predictive& p, const torch::Tensor& y);
/// Per-example CRPS [N].
torch::Tensor crps_values(const Predictive& p, const torch::Tensor& y);

}  // namespace credence
