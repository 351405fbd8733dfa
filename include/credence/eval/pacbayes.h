#pragma once
/// PAC-Bayes bounds for a loss in [0, 1] (e.g. the 0-1 error, or a bounded cross-entropy divided
/// by its bound): with probability at least 1 - delta over the n examples, for every posterior Q,
/// the expected risk of the stochastic network is at most the bound. Every bound uses the same
/// complexity term c = (KL(Q || P) + log(2 sqrt(n) / delta)) / n, with a prior P that did not see
/// those n examples.
#include <cstdint>
#include <string>

namespace credence {

/// kl(q || p) between Bernoulli(q) and Bernoulli(p).
double binary_kl(double q, double p);
/// The largest p in [q, 1] with kl(q || p) <= c (bisection to 1e-12; Seeger's kl-inverse).
double kl_inverse(double q, double c);

/// The complexity term (kl + log(2 sqrt(n) / delta)) / n.
double pacbayes_complexity(double kl, int64_t n, double delta);

enum class PacBayesBound { Seeger, McAllester, Quad, Lambda };
PacBayesBound parse_pacbayes_bound(const std::string& name);  ///< kl, classic, quad, lambda

/// The bound on the risk given the posterior's empirical risk `risk` (for `Lambda`, with
/// `lambda` in (0, 2); Thiemann et al. 2017).
double pacbayes_bound(PacBayesBound bound, double risk, double kl, int64_t n, double delta, double lambda = 1.0);

/// The empirical risk of Q is estimated from `samples` sampled networks; with probability at
/// least 1 - delta_mc the true empirical risk is at most kl_inverse(estimate, log(2 / delta_mc) /
/// samples) (Langford & Caruana 2001). The certificate then holds with 1 - delta - delta_mc.
double sampled_risk_bound(double estimate, int64_t samples, double delta_mc);

}  // namespace credence
