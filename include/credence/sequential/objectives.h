#pragma once
/// Points in a box: scrambled Sobol designs, and the standard test objectives of Bayesian
/// optimization (to be minimized).
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <torch/types.h>

namespace credence {

/// Points i = skip .. skip + n - 1 of a scrambled Sobol sequence in [0, 1)^dim, [n, dim] float64;
/// the scrambling is keyed by `seed`, so a design can be continued where it stopped.
torch::Tensor sobol_points(int64_t n, int64_t dim, uint64_t seed, int64_t skip = 0);

struct Objective {
  std::string name;
  std::vector<double> lower, upper;  ///< the box searched
  double minimum = 0.0;              ///< the known global minimum (regret is measured from it)
  double noise = 0.0;                ///< std of the Gaussian noise added to each evaluation
  std::function<double(const std::vector<double>&)> value;  ///< noiseless
  int64_t dim() const { return static_cast<int64_t>(lower.size()); }
};

/// `branin`, `hartmann6`, `ackley:D`, `rosenbrock:D`, `levy:D`, each with an optional `?noise=SD`.
Objective make_objective(const std::string& spec);
/// What make_objective knows, for messages and `credence describe`.
std::string objective_names();

}  // namespace credence
