#pragma once
/// MCMC convergence diagnostics of Vehtari, Gelman, Simpson, Carpenter & Buerkner (2021),
/// "Rank-normalization, folding, and localization: an improved R-hat": rank-normalized split
/// R-hat and bulk/tail effective sample size (ESS).
///
/// Every function takes draws as [C, S] (C chains of S draws of one quantity) or [C, S, Q]
/// (Q quantities at once, computed together) and returns float64 [] or [Q]. Chains are split in
/// half first (for odd S the middle draw is dropped), so at least 2 chains of 4 draws are needed.
/// A quantity equal in every draw has no R-hat or ESS: its entries are NaN.
#include <torch/types.h>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "credence/eval/predictive.h"

namespace credence {

/// The recommendations of Vehtari et al. (2021): R-hat at most 1.01 and bulk and tail ESS of at
/// least 100 per chain.
constexpr double kRhatThreshold = 1.01;
constexpr double kEssPerChainThreshold = 100.0;

/// max(split R-hat of the rank-normalized draws, split R-hat of the rank-normalized folded draws
/// |x - median|); the folded part catches chains that differ in scale rather than location.
torch::Tensor rhat(const torch::Tensor& chains);
/// Split R-hat of the raw draws (no rank normalization, no folding), as in Gelman et al., BDA3.
torch::Tensor rhat_basic(const torch::Tensor& chains);
/// ESS of the rank-normalized split chains: how well means and medians are estimated.
torch::Tensor ess_bulk(const torch::Tensor& chains);
/// min of the ESS of the indicators x <= q05 and x <= q95 (q: quantiles of all draws pooled):
/// how well the 5% and 95% quantiles are estimated. An indicator that is constant (a discrete
/// quantity) is skipped; NaN when both are.
torch::Tensor ess_tail(const torch::Tensor& chains);
/// ESS of the raw split chains: autocorrelations by FFT, combined across chains, summed with
/// Geyer's initial monotone sequence estimator (as in Stan and ArviZ).
torch::Tensor ess_basic(const torch::Tensor& chains);
/// Normal scores Phi^-1((r - 3/8) / (T + 1/4)) of the ranks r of each quantity's T = C S draws,
/// all chains pooled, ties given their average rank. Same shape as `chains`, not split.
torch::Tensor rank_normalize(const torch::Tensor& chains);

/// Summary over the quantities of a [C, S] or [C, S, Q] set of chains.
struct ChainDiagnostics {
  int64_t num_chains = 0;
  int64_t num_draws = 0;       ///< per chain
  int64_t num_quantities = 0;
  int64_t num_constant = 0;    ///< quantities equal in every draw, left out of the summary values
  double rhat_p90 = std::numeric_limits<double>::quiet_NaN();
  double rhat_max = std::numeric_limits<double>::quiet_NaN();
  double ess_bulk_min = std::numeric_limits<double>::quiet_NaN();
  double ess_tail_min = std::numeric_limits<double>::quiet_NaN();
  torch::Tensor rhat, ess_bulk, ess_tail;  ///< [Q] per quantity (NaN for the constant ones)

  /// One human-readable line per failed check (R-hat > 1.01, ESS < 100 per chain); empty if
  /// the chains look converged.
  std::vector<std::string> warnings() const;
};

ChainDiagnostics summarize(const torch::Tensor& chains);

/// Diagnostics in function space, of the test predictions of MCMC draws stored chain-major
/// (draw i of chain c is sample c * S + i): for regression each draw's predictive mean, for
/// classification each draw's probability of the class the averaged predictive chooses.
ChainDiagnostics prediction_diagnostics(const Predictive& predictive, int64_t chains);

}  // namespace credence
