#pragma once
// Options shared by the sub-commands and small output helpers.
#include <CLI/CLI.hpp>

#include <map>
#include <string>
#include <vector>

#include "credence/fit/fit.h"

namespace credence::cli {

struct CommonOptions {
  int threads = 1;
  bool quiet = false;
  std::string device = "cpu";
  std::string dtype = "float32";
  void add(CLI::App& app);
  /// Applies threads and validates device/dtype.
  void apply() const;
  torch::Device torch_device() const;
  torch::Dtype torch_dtype() const;
};

struct TrainFlags {
  std::string model = "mlp:50";
  std::string likelihood;
  TrainOptions train;
  void add(CLI::App& app);
};

/// One result row as written to --json and printed as a table.
using Row = std::map<std::string, nlohmann::json>;
void print_table(const std::vector<Row>& rows);
/// For MCMC posteriors (several chains): R-hat and ESS of the test predictions into `row`
/// (`rhat` = 90th percentile, `rhat_max`, `ess` = smallest bulk ESS, `ess_tail`), with warnings.
void add_chain_diagnostics(const FittedModel& fitted, const Predictive& predictive, Row& row);
/// IoError when `path` exists and `force` is not set: saved work is never replaced silently.
void refuse_existing(const std::string& path, bool force, const std::string& option);
void write_json(const std::string& path, const nlohmann::json& j, bool overwrite);

void add_fit(CLI::App& app);
void add_predict(CLI::App& app);
void add_evaluate(CLI::App& app);
void add_compare(CLI::App& app);
void add_describe(CLI::App& app);
void add_decide(CLI::App& app);
void add_bound(CLI::App& app);
void add_launch(CLI::App& app);

}  // namespace credence::cli
