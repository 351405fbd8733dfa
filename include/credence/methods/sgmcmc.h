#pragma once
/// Stochastic-gradient MCMC: SGLD (Welling & Teh 2011), SGHMC (Chen et al. 2014), pSGLD (Li et al.
/// 2016) and cyclical SG-MCMC (Zhang et al. 2020). `chains` chains run as one stacked computation
/// [C, P]; the collected samples form a particle posterior [C * S, P] in chain-major order (sample
/// i of chain c is row c * S + i), kept as float32 on the CPU so that long runs stay small.
#include <cstdint>
#include <vector>

#include "credence/methods/method.h"

namespace credence {

MethodInfo sgld_method_info();
MethodInfo sghmc_method_info();
MethodInfo psgld_method_info();
MethodInfo csgmcmc_method_info();

/// The steps (0-based, of `total`) after which sgld/sghmc/psgld collect: after the first
/// floor(burnin * total) steps, either `samples` steps evenly spaced over the rest (the last at
/// the final step), or, for thin > 0, every thin-th step counted back from the final step.
/// InvalidArgument when the steps after burn-in cannot hold them.
std::vector<int64_t> sgmcmc_collect_steps(int64_t total, double burnin, int64_t samples, int64_t thin);

/// Position in [0, 1) of `step` within its cycle, (step - cycle start) / cycle length: the paper's
/// mod(k, K/M) / (K/M) when `cycles` M divides `total` K; otherwise cycle m spans the steps
/// [ceil(m K / M), ceil((m + 1) K / M)), so every cycle is complete (lengths differ by at most 1).
double cyclical_position(int64_t step, int64_t total, int64_t cycles);
/// The cosine step size lr / 2 * (cos(pi * position) + 1).
double cyclical_lr(double lr, int64_t step, int64_t total, int64_t cycles);
/// The steps after which csgmcmc collects: in each cycle, `per_cycle` steps evenly spaced over its
/// sampling phase (position >= exploration), the last at the cycle's last step. InvalidArgument
/// when a sampling phase is shorter than `per_cycle`.
std::vector<int64_t> cyclical_collect_steps(int64_t total, int64_t cycles, double exploration,
                                            int64_t per_cycle);

}  // namespace credence
