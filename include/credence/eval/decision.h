#pragma once
/// Bayes-optimal decisions from a Predictive under a cost specification: the action that
/// minimizes the expected cost under the predictive, its expected cost, and the realized cost
/// on labels. See docs/decisions.md for the cost file format.
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "credence/eval/predictive.h"

namespace credence {

struct CostSpec {
  Task task = Task::Classification;

  // Classification: matrix[a][c] is the cost of action a when the true class is c.
  std::vector<std::vector<double>> matrix;
  std::vector<std::string> action_names;  ///< one per row of `matrix`

  // Regression. With y the truth:
  //   squared:  (a - y)^2                                  -> the predictive mean
  //   pinball:  under * (y - a)^+ + over * (a - y)^+       -> the quantile under / (under + over)
  //   interval, miss "distance": width_cost * (u - l) + miss_cost * ((l - y)^+ + (y - u)^+)
  //             -> quantiles t and 1 - t with t = width_cost / miss_cost (a point at the median
  //                when t >= 1/2)
  //   interval, miss "fixed":    width_cost * (u - l) + miss_cost * 1[y outside [l, u]]
  //             -> the interval with density width_cost / miss_cost at both ends (searched on a grid)
  enum class Rule { Squared, Pinball, Interval };
  Rule rule = Rule::Squared;
  double under = 1, over = 1;
  double width_cost = 0, miss_cost = 0;
  bool miss_fixed = false;  ///< interval: miss_cost per miss instead of per unit outside

  int64_t num_classes() const { return matrix.empty() ? 0 : static_cast<int64_t>(matrix[0].size()); }
  /// InvalidArgument for negative/NaN costs, ragged or empty matrices, names that do not match.
  void validate() const;
  /// validate(), and InvalidArgument when the spec does not fit a model of this task and classes.
  void check_model(Task model_task, int64_t model_classes) const;
};

/// Parses a cost spec (strict: unknown keys, wrong types and bad values are InvalidArgument).
///   {"classes": "fmnist" | N | ["a", ...], "error_cost": 10, "correct_cost": 0,
///    "actions": [{"name": "refer", "cost": 1 or [one per class]}]}
///   {"matrix": [[...], ...], "action_names": [...]}
///   {"type": "squared"} | {"type": "pinball", "under": 3, "over": 1}
///   {"type": "interval", "width_cost": 1, "miss_cost": 20, "miss": "distance" | "fixed"}
CostSpec parse_cost_spec(const nlohmann::json& j);
/// Reads and parses a JSON cost file (IoError when unreadable, InvalidArgument when malformed).
CostSpec load_cost_spec(const std::string& path);

struct Decisions {
  torch::Tensor action;         ///< classification: int64 [N], a row of the cost matrix
  torch::Tensor value;          ///< regression point (squared, pinball): float64 [N]
  torch::Tensor lower, upper;   ///< regression interval: float64 [N]
  torch::Tensor expected_cost;  ///< float64 [N], under the predictive
};

/// The Bayes action per input: argmin over actions of the expected cost under `p`.
Decisions decide(const Predictive& p, const CostSpec& costs);
/// The cost each decision incurred given the truth `y`: float64 [N].
torch::Tensor realized_cost(const Decisions& d, const CostSpec& costs, const torch::Tensor& y);

}  // namespace credence
