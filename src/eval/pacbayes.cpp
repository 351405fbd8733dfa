#include "credence/eval/pacbayes.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "credence/core/error.h"

namespace credence {

double binary_kl(double q, double p) {
  double kl = 0.0;
  if (q > 0) kl += q * std::log(q / p);
  if (q < 1) kl += (1 - q) * std::log((1 - q) / (1 - p));
  return kl;
}

double kl_inverse(double q, double c) {
  if (!(q >= 0 && q <= 1)) throw InvalidArgument(fmt::format("kl inverse: risk must be in [0, 1], got {}", q));
  if (!(c >= 0)) throw InvalidArgument(fmt::format("kl inverse: bound must be >= 0, got {}", c));
  double lo = q, hi = 1.0;
  while (hi - lo > 1e-12) {
    double mid = 0.5 * (lo + hi);
    (binary_kl(q, mid) > c ? hi : lo) = mid;
  }
  return lo;
}

double pacbayes_complexity(double kl, int64_t n, double delta) {
  if (n < 1) throw InvalidArgument("PAC-Bayes bound needs at least one example");
  if (!(delta > 0 && delta < 1)) throw InvalidArgument(fmt::format("delta must be in (0, 1), got {}", delta));
  if (!(kl >= 0)) throw InvalidArgument(fmt::format("KL must be >= 0, got {}", kl));
  const double dn = static_cast<double>(n);
  return (kl + std::log(2.0 * std::sqrt(dn) / delta)) / dn;
}

PacBayesBound parse_pacbayes_bound(const std::string& name) {
  if (name == "kl") return PacBayesBound::Seeger;
  if (name == "classic") return PacBayesBound::McAllester;
  if (name == "quad") return PacBayesBound::Quad;
  if (name == "lambda") return PacBayesBound::Lambda;
  throw InvalidArgument(fmt::format("unknown PAC-Bayes bound '{}' (known: kl, classic, quad, lambda)", name));
}

double pacbayes_bound(PacBayesBound bound, double risk, double kl, int64_t n, double delta, double lambda) {
  if (!(risk >= 0 && risk <= 1))
    throw InvalidArgument(fmt::format("PAC-Bayes bounds need a loss in [0, 1]; empirical risk {}", risk));
  const double c = pacbayes_complexity(kl, n, delta);
  switch (bound) {
    case PacBayesBound::Seeger: return kl_inverse(risk, c);
    case PacBayesBound::McAllester: return risk + std::sqrt(c / 2);
    case PacBayesBound::Quad: return std::pow(std::sqrt(risk + c / 2) + std::sqrt(c / 2), 2);
    case PacBayesBound::Lambda:
      if (!(lambda > 0 && lambda < 2)) throw InvalidArgument(fmt::format("lambda must be in (0, 2), got {}", lambda));
      return risk / (1 - lambda / 2) + c / (lambda * (1 - lambda / 2));
  }
  return 1.0;
}

double sampled_risk_bound(double estimate, int64_t samples, double delta_mc) {
  if (samples < 1) throw InvalidArgument("the sampled risk needs at least one network");
  if (!(delta_mc > 0 && delta_mc < 1))
    throw InvalidArgument(fmt::format("delta for the sampling term must be in (0, 1), got {}", delta_mc));
  return kl_inverse(estimate, std::log(2.0 / delta_mc) / static_cast<double>(samples));
}

}  // namespace credence
