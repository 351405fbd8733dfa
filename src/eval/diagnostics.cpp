#include "credence/eval/diagnostics.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <tuple>

#include "credence/core/error.h"

// All work is on float64 [Q, C, S] (quantity first, so that every reduction runs along the last
// dimensions), vectorized over the quantities and done in bounded slices of them to cap memory.
namespace credence {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr int64_t kSliceElements = int64_t(1) << 22;  // ~32 MB of float64 per slice

std::string shape_of(const at::Tensor& t) {
  std::string s = "[";
  for (int64_t d = 0; d < t.dim(); ++d) s += (d ? ", " : "") + std::to_string(t.size(d));
  return s + "]";
}

/// `chains` validated and laid out as float64 [Q, C, S].
at::Tensor draws(const at::Tensor& chains, const char* fn) {
  if (!chains.defined() || (chains.dim() != 2 && chains.dim() != 3))
    throw InvalidArgument(fmt::format(
        "{}: chains have shape {}, expected [C, S] or [C, S, Q] (C chains of S draws)", fn,
        chains.defined() ? shape_of(chains) : "undefined"));
  if (chains.is_complex())
    throw InvalidArgument(fmt::format("{}: chains are complex; pass real draws", fn));
  const int64_t C = chains.size(0), S = chains.size(1);
  if (C < 2)
    throw InvalidArgument(fmt::format(
        "{}: got {} chain, need at least 2: R-hat and ESS compare chains; run 4 or more", fn, C));
  if (S < 4)
    throw InvalidArgument(fmt::format(
        "{}: got {} draws per chain, need at least 4: chains are split in half and each half "
        "needs at least 2 draws", fn, S));
  if (chains.dim() == 3 && chains.size(2) == 0)
    throw InvalidArgument(fmt::format("{}: chains have shape {}, no quantities", fn, shape_of(chains)));
  at::Tensor x = chains.detach().to(at::kDouble);
  x = (x.dim() == 2 ? x.unsqueeze(0) : x.permute({2, 0, 1})).contiguous();
  if (x.sum().isfinite().item<bool>()) return x;  // fast path; the sum can overflow, so recheck
  at::Tensor bad = at::isfinite(x).logical_not();
  if (bad.any().item<bool>()) {
    at::Tensor where = bad.nonzero()[0].cpu();
    throw NumericalError(fmt::format(
        "{}: quantity {} has a NaN or inf draw (chain {}, draw {}); diagnostics need finite "
        "draws: check the sampler for divergences or overflow", fn, where[0].item<int64_t>(),
        where[1].item<int64_t>(), where[2].item<int64_t>()));
  }
  return x;
}

/// [Q] results back to the caller's layout: [] for [C, S] input.
at::Tensor as_input(const at::Tensor& per_quantity, const at::Tensor& chains) {
  return chains.dim() == 2 ? per_quantity.squeeze(0) : per_quantity;
}

/// Applies `fn` (a [q, C, S] slice -> a vector of [q] tensors) slice by slice, concatenated.
template <class F>
std::vector<at::Tensor> by_slices(const at::Tensor& x, F fn) {
  const int64_t Q = x.size(0);
  const int64_t step = std::max<int64_t>(1, kSliceElements / (x.size(1) * x.size(2)));
  std::vector<std::vector<at::Tensor>> parts;
  for (int64_t q0 = 0; q0 < Q; q0 += step) parts.push_back(fn(x.narrow(0, q0, std::min(step, Q - q0))));
  std::vector<at::Tensor> out;
  for (size_t i = 0; i < parts[0].size(); ++i) {
    std::vector<at::Tensor> pieces;
    for (const auto& p : parts) pieces.push_back(p[i]);
    out.push_back(at::cat(pieces));
  }
  return out;
}

/// [Q, C, S] -> [Q, 2C, S/2]: the first and last halves of each chain (odd S drops the middle).
at::Tensor split_chains(const at::Tensor& x) {
  const int64_t S = x.size(2), half = S / 2;
  return at::cat({x.narrow(2, 0, half), x.narrow(2, S - half, half)}, 1);
}

/// Each quantity's draws, all chains pooled and sorted: values [Q, T] and their flat positions.
struct Pooled {
  at::Tensor values, order;
};
Pooled pool(const at::Tensor& x) {
  at::Tensor values, order;
  std::tie(values, order) = at::sort(x.reshape({x.size(0), -1}), 1);
  return {values, order};
}

/// Quantile p of each row of sorted values [Q, T] with linear interpolation (R type 7).
at::Tensor sorted_quantile(const at::Tensor& v, double p) {
  const int64_t T = v.size(1);
  const double h = (T - 1) * p;
  const int64_t lo = static_cast<int64_t>(std::floor(h)), hi = std::min(lo + 1, T - 1);
  at::Tensor a = v.select(1, lo), b = v.select(1, hi);
  return at::where(a == b, a, a + (h - lo) * (b - a));  // where: keeps inf - inf out
}

/// Quantities whose draws xs [Q, M, N] are all equal have no R-hat or ESS.
at::Tensor nan_if_constant(const at::Tensor& result, const at::Tensor& xs) {
  at::Tensor flat = xs.reshape({xs.size(0), -1});
  return at::where(flat.amin(1) == flat.amax(1), kNaN, result);
}
at::Tensor nan_if_constant(const at::Tensor& result, const Pooled& p) {
  const int64_t T = p.values.size(1);
  return at::where(p.values.select(1, 0) == p.values.select(1, T - 1), kNaN, result);
}

/// Ranks of sorted values [Q, T] with ties averaged, as indices 2r - 2 into score_table: a run of
/// equal values spans positions [first, last] and shares rank (first + last) / 2.
at::Tensor tied_rank_index(const at::Tensor& differs) {
  const int64_t Q = differs.size(0), T = differs.size(1) + 1;
  at::Tensor pos = at::arange(1, T + 1, differs.options().dtype(at::kLong)).expand({Q, T});
  at::Tensor edge = at::ones({Q, 1}, differs.options());
  at::Tensor starts = at::cat({edge, differs}, 1), ends = at::cat({differs, edge}, 1);
  at::Tensor first = std::get<0>(at::cummax(at::where(starts, pos, 0), 1));
  at::Tensor last = std::get<0>(at::cummin(at::where(ends, pos, T + 1).flip(1), 1)).flip(1);
  return first + last - 2;
}

/// Normal scores Phi^-1((r - 3/8) / (T + 1/4)) of the ranks r = 1, 1.5, 2, ..., T: [2T - 1].
at::Tensor score_table(int64_t T, const at::TensorOptions& options) {
  at::Tensor rank = at::arange(2, 2 * T + 1, options) / 2;
  return at::special_ndtri((rank - 0.375) / (T + 0.25));
}

/// Normal scores of x [Q, ...] from its pooled sort. Rows without ties share one set of scores;
/// only rows with ties (discrete quantities) pay for the average ranks.
at::Tensor normal_scores(const at::Tensor& x, const Pooled& p) {
  const at::Tensor& v = p.values;
  const int64_t Q = v.size(0), T = v.size(1);
  at::Tensor table = score_table(T, v.options());
  at::Tensor z = table.slice(0, 0, 2 * T - 1, 2).expand({Q, T});
  at::Tensor differs = v.narrow(1, 1, T - 1) != v.narrow(1, 0, T - 1);
  at::Tensor tied = differs.all(1).logical_not();
  if (tied.any().item<bool>()) {
    at::Tensor rows = tied.nonzero().squeeze(1);
    at::Tensor index = tied_rank_index(differs.index_select(0, rows));
    z = z.index_copy(0, rows, table.index_select(0, index.reshape({-1})).view_as(index));
  }
  return at::empty_like(v).scatter_(1, p.order, z).view_as(x);
}

/// Split R-hat of split chains [Q, M, N]: sqrt(var+ / W), var+ = (N-1)/N W + B/N.
at::Tensor split_rhat(const at::Tensor& xs) {
  const double N = static_cast<double>(xs.size(2));
  at::Tensor chain_mean = xs.mean(2, /*keepdim=*/true);
  // Two passes by hand: at::var over the last dimension is several times slower on the CPU.
  at::Tensor within = (xs - chain_mean).square_().sum(2).mean(1) / (N - 1);
  at::Tensor between_over_n = at::var(chain_mean.squeeze(2), {1}, /*unbiased=*/true);
  return at::sqrt(((N - 1) / N * within + between_over_n) / within);
}

/// ESS = M N / tau from the combined autocorrelations rho [Q, N] (rho_0 = 1), with tau from
/// Geyer's initial monotone sequence: pair sums P_k = rho_2k + rho_2k+1 are kept up to the first
/// non-positive one and made non-increasing. As in Stan: the even lag of the last pair is kept
/// when its pair is not negative, and added once more if positive (less variance for antithetic
/// chains); tau is at least 1 / log10(M N).
at::Tensor geyer_ess(const at::Tensor& rho, double total) {
  const int64_t Q = rho.size(0), N = rho.size(1);
  const int64_t K = 1 + (N >= 3 ? (N - 3) / 2 : 0);  // pairs 0..K-1 use lags <= max(1, N - 2)
  at::Tensor pairs = rho.narrow(1, 0, 2 * K).reshape({Q, K, 2}).sum(2);
  at::Tensor k = at::arange(K, rho.options().dtype(at::kLong));
  at::Tensor last = at::where(pairs <= 0, k, K).amin(1).clamp_max(K - 1);  // [Q]
  at::Tensor monotone = std::get<0>(at::cummin(pairs, 1));
  at::Tensor kept_pairs = (monotone * (k.unsqueeze(0) < last.unsqueeze(1))).sum(1);
  at::Tensor last_even = rho.gather(1, (2 * last).unsqueeze(1)).squeeze(1);
  at::Tensor last_pair = pairs.gather(1, last.unsqueeze(1)).squeeze(1);
  at::Tensor kept_even = at::where((last_pair >= 0) | (last == 0), last_even, 0.0);
  at::Tensor tau = -1 + 2 * (kept_pairs + kept_even) + last_even.clamp_min(0);
  return total / tau.clamp_min(1 / std::log10(total));
}

/// ESS of split chains [Q, M, N]: per-chain autocovariances by FFT, combined as in the paper,
/// rho_t = 1 - (W - mean_m acov_m(t)) / var+.
at::Tensor split_ess(const at::Tensor& xs) {
  const int64_t M = xs.size(1), N = xs.size(2);
  at::Tensor chain_mean = xs.mean(2, /*keepdim=*/true);
  int64_t nfft = 1;
  while (nfft < 2 * N) nfft <<= 1;  // zero padding: no wrap-around between lags
  at::Tensor padded = at::empty({xs.size(0), M, nfft}, xs.options());
  padded.narrow(2, N, nfft - N).zero_();
  at::Tensor centered = padded.narrow(2, 0, N);
  at::sub_out(centered, xs, chain_mean);
  at::Tensor f = at::fft_rfft(padded);  // along the last dimension
  // |f|^2 in place, on the real view: complex multiplication is several times slower on the CPU.
  at::Tensor re = at::view_as_real(f).select(-1, 0), im = at::view_as_real(f).select(-1, 1);
  re.mul_(re).addcmul_(im, im);
  im.zero_();
  at::Tensor acov = at::fft_irfft(f, nfft, -1).narrow(-1, 0, N) / N;  // [Q, M, N]
  at::Tensor acov_mean = acov.mean(1);
  at::Tensor within = acov_mean.select(1, 0) * N / (N - 1);
  at::Tensor var_plus = within * (N - 1) / N + at::var(chain_mean.squeeze(2), {1}, true);
  at::Tensor rho = 1 - (within.unsqueeze(1) - acov_mean) / var_plus.unsqueeze(1);
  rho.select(1, 0).fill_(1.0);
  return geyer_ess(rho, static_cast<double>(M * N));
}

// The slice computations behind the public functions: `xs` are split chains [q, M, N], `p` their
// pooled sort and `z` their normal scores.
at::Tensor rank_rhat(const at::Tensor& xs, const Pooled& p, const at::Tensor& z) {
  at::Tensor folded = (xs - sorted_quantile(p.values, 0.5).view({-1, 1, 1})).abs();
  at::Tensor folded_rhat = split_rhat(normal_scores(folded, pool(folded)));
  // fmax: a folded quantity can be constant (two values around the median) while xs is not.
  return nan_if_constant(at::fmax(split_rhat(z), folded_rhat), p);
}
at::Tensor bulk_ess(const Pooled& p, const at::Tensor& z) { return nan_if_constant(split_ess(z), p); }
at::Tensor tail_ess(const at::Tensor& xs, const Pooled& p) {
  auto below = [&](double q) {
    return (xs <= sorted_quantile(p.values, q).view({-1, 1, 1})).to(at::kDouble);
  };
  // fmin: an indicator that is constant (a discrete quantity) says nothing; the other tail does.
  return nan_if_constant(at::fmin(split_ess(below(0.05)), split_ess(below(0.95))), p);
}

/// Smallest non-NaN entry, NaN if there is none.
double nan_min(const at::Tensor& t) {
  at::Tensor kept = t.masked_select(t.isnan().logical_not());
  return kept.numel() ? kept.min().item<double>() : kNaN;
}

/// `slice_fn` (split chains [q, M, N] -> [q]) over all quantities of `chains`.
template <class F>
at::Tensor per_quantity(const at::Tensor& chains, const char* fn, F slice_fn) {
  at::Tensor x = draws(chains, fn);
  auto out = by_slices(x, [&](const at::Tensor& slice) {
    return std::vector<at::Tensor>{slice_fn(split_chains(slice))};
  });
  return as_input(out[0], chains);
}

}  // namespace

at::Tensor rhat(const at::Tensor& chains) {
  return per_quantity(chains, "rhat", [](const at::Tensor& xs) {
    Pooled p = pool(xs);
    return rank_rhat(xs, p, normal_scores(xs, p));
  });
}

at::Tensor rhat_basic(const at::Tensor& chains) {
  return per_quantity(chains, "rhat_basic",
                      [](const at::Tensor& xs) { return nan_if_constant(split_rhat(xs), xs); });
}

at::Tensor ess_bulk(const at::Tensor& chains) {
  return per_quantity(chains, "ess_bulk", [](const at::Tensor& xs) {
    Pooled p = pool(xs);
    return bulk_ess(p, normal_scores(xs, p));
  });
}

at::Tensor ess_tail(const at::Tensor& chains) {
  return per_quantity(chains, "ess_tail", [](const at::Tensor& xs) { return tail_ess(xs, pool(xs)); });
}

at::Tensor ess_basic(const at::Tensor& chains) {
  return per_quantity(chains, "ess_basic",
                      [](const at::Tensor& xs) { return nan_if_constant(split_ess(xs), xs); });
}

at::Tensor rank_normalize(const at::Tensor& chains) {
  at::Tensor x = draws(chains, "rank_normalize");
  at::Tensor z = by_slices(x, [](const at::Tensor& slice) {
    return std::vector<at::Tensor>{normal_scores(slice, pool(slice))};
  })[0];
  return chains.dim() == 2 ? z.squeeze(0) : z.permute({1, 2, 0}).contiguous();
}

ChainDiagnostics summarize(const at::Tensor& chains) {
  at::Tensor x = draws(chains, "summarize");
  auto out = by_slices(x, [](const at::Tensor& slice) {
    at::Tensor xs = split_chains(slice);
    Pooled p = pool(xs);
    at::Tensor z = normal_scores(xs, p);
    return std::vector<at::Tensor>{rank_rhat(xs, p, z), bulk_ess(p, z), tail_ess(xs, p)};
  });
  ChainDiagnostics d;
  d.num_chains = x.size(1);
  d.num_draws = x.size(2);
  d.num_quantities = x.size(0);
  d.rhat = out[0];
  d.ess_bulk = out[1];
  d.ess_tail = out[2];
  at::Tensor defined = d.rhat.isnan().logical_not();
  d.num_constant = d.num_quantities - defined.sum().item<int64_t>();
  if (d.num_constant == d.num_quantities) return d;
  at::Tensor rhat_sorted = std::get<0>(at::sort(d.rhat.masked_select(defined)));
  d.rhat_p90 = sorted_quantile(rhat_sorted.unsqueeze(0), 0.9).item<double>();
  d.rhat_max = rhat_sorted[-1].item<double>();
  d.ess_bulk_min = nan_min(d.ess_bulk);
  d.ess_tail_min = nan_min(d.ess_tail);
  return d;
}

std::vector<std::string> ChainDiagnostics::warnings() const {
  std::vector<std::string> out;
  if (num_quantities > 0 && num_constant == num_quantities) {
    out.push_back("every quantity is constant across all draws: R-hat and ESS are undefined");
    return out;
  }
  const std::string advice = "run longer chains or more warm-up";
  if (rhat_max > kRhatThreshold) {
    const int64_t high = rhat.defined() ? (rhat > kRhatThreshold).sum().item<int64_t>() : 1;
    out.push_back(fmt::format(
        "R-hat above {} for {} of {} quantities (max {:.3f}, 90th percentile {:.3f}): the "
        "chains have not mixed and disagree; {} (Vehtari et al. 2021 recommend R-hat <= {})",
        kRhatThreshold, high, num_quantities - num_constant, rhat_max, rhat_p90, advice,
        kRhatThreshold));
  }
  const double need = kEssPerChainThreshold * static_cast<double>(num_chains);
  auto check_ess = [&](const char* kind, double min, const torch::Tensor& ess, const char* what) {
    if (!(min < need)) return;
    const int64_t low = ess.defined() ? (ess < need).sum().item<int64_t>() : 1;
    out.push_back(fmt::format(
        "{} ESS below {:.0f} for {} of {} quantities (min {:.1f}): {} are unreliable; {} "
        "(Vehtari et al. 2021 recommend at least {:.0f} per chain, here {} chains)",
        kind, need, low, num_quantities - num_constant, min, what, advice, kEssPerChainThreshold,
        num_chains));
  };
  check_ess("bulk", ess_bulk_min, ess_bulk, "estimates of means and medians");
  check_ess("tail", ess_tail_min, ess_tail, "estimates of the 5% and 95% quantiles (intervals)");
  return out;
}

ChainDiagnostics prediction_diagnostics(const Predictive& predictive, int64_t chains) {
  torch::Tensor draws;  // [C * S, N]
  if (predictive.task == Task::Classification && predictive.sample_probs.defined()) {
    auto chosen = predictive.probs.argmax(1);
    auto idx = chosen.view({1, -1, 1}).expand({predictive.sample_probs.size(0), chosen.size(0), 1});
    draws = predictive.sample_probs.gather(2, idx).squeeze(2);
  } else if (predictive.task == Task::Regression && predictive.sample_mean.defined()) {
    draws = predictive.sample_mean;
  } else {
    throw InvalidArgument("prediction diagnostics need per-draw predictions (a sampled posterior)");
  }
  if (chains < 2 || draws.size(0) % chains != 0)
    throw InvalidArgument(fmt::format("{} draws do not split into {} chains (need >= 2)", draws.size(0), chains));
  return summarize(draws.to(at::kDouble).reshape({chains, draws.size(0) / chains, draws.size(1)}));
}

}  // namespace credence
