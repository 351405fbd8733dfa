#pragma once
/// Bayesian optimization over a box with any credence method as the surrogate, as an ask/tell
/// loop: suggest(k) proposes points, observe(x, y) records a measurement. The whole state is a
/// JSON value, so a loop driven by a lab or another program can stop and resume between steps,
/// and a resumed loop proposes exactly what an uninterrupted one would.
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "credence/methods/method.h"

namespace credence {

/// The acquisitions BayesOpt knows: ei, ucb, thompson, random.
const std::vector<std::string>& optimization_acquisitions();

struct BayesOptOptions {
  std::vector<double> lower, upper;  ///< the box
  std::string method = "gp";         ///< the surrogate: any regression method spec
  std::string model = "mlp:50,50";   ///< the surrogate's network (methods that use one)
  std::string likelihood;            ///< "" = Gaussian with learned noise
  /// The surrogate's recipe (train.seed is unused: see seed). Its epochs default to 0: then each
  /// fit takes `steps` optimizer steps, whatever the number of observations. Its step size
  /// defaults to 1e-2: a few hundred points fit in one batch, and 1000 steps of Adam's usual 1e-3
  /// leave a network far from fitting them.
  TrainOptions train = [] {
    TrainOptions t;
    t.epochs = 0;
    t.lr = 1e-2;
    return t;
  }();
  int64_t steps = 1000;
  std::string acquisition = "ei";    ///< ei, ucb, thompson or random
  double beta = 4.0;                 ///< UCB: mean + sqrt(beta) sd
  int64_t initial = 10;              ///< Sobol points before the surrogate takes over
  int64_t samples = 32;              ///< predictive draws of Gaussian posteriors
  bool maximize = false;             ///< minimize by default
  uint64_t seed = 0;
  void validate() const;
  nlohmann::json to_json() const;
  static BayesOptOptions from_json(const nlohmann::json& j);
};

/// `n` draws of a fitted regression function at inputs x [M, ...] (the fit's raw input units): [n, M]
/// in target units. A GP draws jointly over x; a posterior whose predictive has several components
/// (members, particles, weight draws, dropout masks) gives one component per draw; one that predicts
/// a single Gaussian (the linearized Laplace) a weight draw through the network. Thompson sampling
/// measures the argmax of each draw.
torch::Tensor thompson_draws(const FittedModel& fitted, const torch::Tensor& x, int64_t n, uint64_t key,
                             int64_t samples = 32);

class BayesOpt {
 public:
  explicit BayesOpt(BayesOptOptions options);
  /// `k` points to measure next (the initial Sobol design first, then the acquisition's best).
  std::vector<std::vector<double>> suggest(int64_t k = 1);
  /// Records a measurement; InvalidArgument for a point outside the box or a non-finite value.
  void observe(const std::vector<double>& x, double y);

  int64_t size() const { return static_cast<int64_t>(ys_.size()); }
  const std::vector<std::vector<double>>& points() const { return xs_; }
  const std::vector<double>& values() const { return ys_; }
  /// The best value observed (smallest, or largest when maximizing) and where.
  double best_value() const;
  const std::vector<double>& best_point() const;
  /// What the last suggest() did: phase, fit and acquisition seconds, surrogate facts.
  const nlohmann::json& last_round() const { return last_round_; }
  const BayesOptOptions& options() const { return options_; }

  /// A loop that goes on from `points` and `values` measured elsewhere (e.g. listed in a file):
  /// its design continues after them and its rounds are keyed by their count, so asking again
  /// with one more measurement gives new points.
  static BayesOpt continuing(BayesOptOptions options, const std::vector<std::vector<double>>& points,
                             const std::vector<double>& values);

  nlohmann::json state() const;
  static BayesOpt from_state(const nlohmann::json& state);
  /// Writes state() to `path`; refuses to replace a file unless `overwrite`.
  void save(const std::string& path, bool overwrite = false) const;
  static BayesOpt load(const std::string& path);

 private:
  /// The next k points in the unit cube [k, D].
  torch::Tensor suggest_with_surrogate(int64_t k, uint64_t key);
  std::vector<std::vector<double>> to_box(const torch::Tensor& unit) const;
  BayesOptOptions options_;
  std::vector<std::vector<double>> xs_;
  std::vector<double> ys_;
  int64_t rounds_ = 0;        ///< suggest() calls so far: keys each round's randomness
  int64_t sobol_used_ = 0;    ///< initial-design points handed out
  nlohmann::json last_round_ = nlohmann::json::object();
};

}  // namespace credence
