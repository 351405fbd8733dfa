#pragma once
// Options shared by the sub-commands and small output helpers.
#include <CLI/CLI.hpp>

#include <map>
#include <string>
#include <vector>

#include "credence/fit/fit.h"

namespace credence::cli {

/// A CLI11 check: a whole number >= `min`, else a message showing `example`.
CLI::Validator whole_number_at_least(long long min, const std::string& example);

struct CommonOptions {
  int threads = 1;
  bool quiet = false;
  std::string device = "cpu";
  std::string dtype = "float32";
  int dist_timeout = 300;
  void add(CLI::App& app);
  /// Applies threads and validates device/dtype.
  void apply() const;
  torch::Device torch_device() const;
  torch::Dtype torch_dtype() const;
};

struct TrainFlags {
  std::string model = "mlp:50";
  std::string likelihood, init, freeze, adapters;
  TrainOptions train;
  /// Adds the options to `app` and checks them together once it has parsed (check()).
  void add(CLI::App& app);
  /// InvalidArgument for flags that parse but do not go together (--epochs 0 without --init).
  void check() const;
  /// Copies the model, likelihood, starting weights, frozen names, adapters and training options
  /// into `request` (a FitRequest, or any options struct with those fields).
  template <class Request>
  void fill(Request& request) const {
    request.model = model;
    request.likelihood = likelihood;
    request.init = init;
    request.freeze = freeze;
    request.adapters = adapters;
    request.train = train;
  }
};

/// "map,laplace:hessian=kron,subset=last_layer;vi" into method specs: a piece whose first '='
/// comes before any ':' continues the previous method's options. Refuses an empty or repeated list.
std::vector<std::string> split_methods(const std::string& text);

/// "a,b" as a list of choices, each one of `known`; InvalidArgument naming `option` otherwise.
std::vector<std::string> split_choices(const std::string& text, const std::vector<std::string>& known,
                                       const std::string& option);
/// Mean and standard error of the mean (0 for one value).
std::pair<double, double> mean_and_se(const std::vector<double>& values);
/// "mean (standard error)" of values, 3 significant digits (the mean alone for one value).
std::string mean_se_text(const std::vector<double>& values);

/// One result row as written to --json and printed as a table.
using Row = std::map<std::string, nlohmann::json>;
/// Prints rows as a table at most `max_width` characters wide: method first, then the main metrics,
/// costs last; columns that do not fit are named on a closing line (all are in --json).
void print_table(const std::vector<Row>& rows, size_t max_width = 100);
/// For MCMC posteriors (several chains): R-hat and ESS of the test predictions into `row`
/// (`rhat` = 90th percentile, `rhat_max`, `ess` = smallest bulk ESS, `ess_tail`), with warnings.
void add_chain_diagnostics(const FittedModel& fitted, const Predictive& predictive, Row& row);
/// map_seconds, curvature_seconds, factor_seconds, marglik_seconds, val_seconds, prior_precision and sigma from
/// the fit's report, where its method gives them.
void add_fit_facts(const FittedModel& fitted, Row& row);
/// check_output_path for an optional output (empty: none asked for); call before any work.
void check_optional_output(const std::string& path, bool force, const std::string& option);
void write_json(const std::string& path, const nlohmann::json& j, bool overwrite);

void add_fit(CLI::App& app);
void add_predict(CLI::App& app);
void add_evaluate(CLI::App& app);
void add_compare(CLI::App& app);
void add_describe(CLI::App& app);
void add_decide(CLI::App& app);
void add_bound(CLI::App& app);
void add_launch(CLI::App& app);
void add_optimize(CLI::App& app);
void add_active(CLI::App& app);
void add_meta_fit(CLI::App& app);

}  // namespace credence::cli
