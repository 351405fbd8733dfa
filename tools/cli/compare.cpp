// compare: fit several methods on the same data and model, evaluate each on a test set, rank
// them, and optionally write an HTML report.
#include <fmt/format.h>

#include <chrono>

#include "common.h"
#include "credence/core/error.h"
#include "credence/core/progress.h"
#include "credence/core/spec.h"
#include "credence/core/runtime.h"
#include "credence/eval/calibration.h"
#include "credence/eval/conformal.h"
#include "credence/eval/metrics.h"
#include "credence/eval/ood.h"
#include "credence/eval/selective.h"
#include "credence/eval/temperature.h"
#include "credence/eval/uncertainty.h"
#include "gnuplot.h"
#include "ranking.h"
#include "report.h"

namespace credence::cli {
namespace {


// Split conformal needs enough calibration points for its quantile to be stable.
constexpr int64_t kMinCalibration = 100;
// Points of the 1-D regression band plot.
constexpr int64_t kGridPoints = 200;

/// conformal_* (APS sets / normalized-residual intervals calibrated on `cal`) and credible_*
/// (the predictive's own sets/intervals) of nominal `level`, evaluated on the test set.
void add_set_metrics(const Predictive& cal, const torch::Tensor& y_cal, const Predictive& test,
                     const torch::Tensor& y_test, double level, Row& row) {
  SetQuality conformal, credible;
  if (test.task == Task::Classification) {
    conformal = evaluate_sets(conformal_sets(cal, y_cal, test, level, lac()), y_test);
    credible = evaluate_sets(credible_sets(test, level), y_test);
    for (const auto& [name, score] : {std::pair{"aps", aps()}, std::pair{"raps", raps()}}) {
      auto q = evaluate_sets(conformal_sets(cal, y_cal, test, level, score), y_test);
      row[fmt::format("conformal_{}_coverage", name)] = q.coverage;
      row[fmt::format("conformal_{}_set_size", name)] = q.size;
    }
  } else {
    conformal = evaluate_intervals(conformal_intervals(cal, y_cal, test, level), y_test);
    credible = evaluate_intervals(credible_intervals(test, level), y_test);
  }
  row["conformal_coverage"] = conformal.coverage;
  row["conformal_set_size"] = conformal.size;
  row["credible_coverage"] = credible.coverage;
  row["credible_set_size"] = credible.size;
}

std::vector<double> to_vector(const torch::Tensor& t) {
  auto c = t.detach().to(torch::kCPU, torch::kFloat64).contiguous();
  return {c.data_ptr<double>(), c.data_ptr<double>() + c.numel()};
}

/// The data every method is evaluated on.
struct EvalData {
  Dataset test;
  std::optional<Dataset> cal, ood, grid;  ///< grid: inputs of the 1-D regression band plot
};

/// One method's predictives on EvalData's parts.
struct Predictions {
  Predictive test;
  std::optional<Predictive> cal, ood, grid;
  double seconds = 0;  ///< predicting the test set
};

Predictions predict_all(const FittedModel& fitted, const EvalData& d, int64_t samples) {
  Predictions p;
  auto start = std::chrono::steady_clock::now();
  p.test = fitted.predict(d.test, {samples}).to(torch::kCPU);
  p.seconds = seconds_since(start);
  if (d.cal) p.cal = fitted.predict(*d.cal, {samples}).to(torch::kCPU);
  if (d.ood) p.ood = fitted.predict(*d.ood, {samples}).to(torch::kCPU);
  if (d.grid) p.grid = fitted.predict(*d.grid, {samples}).to(torch::kCPU);
  return p;
}

/// Metrics of one method into `row`, and what its plots need into `curves`.
void evaluate(const Predictions& p, const EvalData& d, double level, Row& row, MethodCurves& curves) {
  const auto& y = d.test.y;
  for (const auto& [k, v] : standard_metrics(p.test, y)) row[k] = v;
  if (p.test.task == Task::Classification) {
    row["mce"] = mce(p.test, y);
    curves.risk = risk_coverage(p.test, y);
    row["aurc"] = aurc(curves.risk);
    curves.reliability = reliability_diagram(p.test, y);
  } else {
    row["crps"] = crps(p.test, y);
    auto y64 = y.to(torch::kCPU, torch::kFloat64);
    curves.risk = risk_coverage(-p.test.var.to(torch::kFloat64), (p.test.mean.to(torch::kFloat64) - y64).square());
  }
  if (p.cal) add_set_metrics(*p.cal, d.cal->y, p.test, y, level, row);
  if (p.ood) {
    for (const auto& [score, suffix] : std::vector<std::pair<std::string, std::string>>{
             {"entropy", ""}, {"max_prob", "_max_prob"}, {"mutual_info", "_mutual_info"}})
      for (const auto& [k, v] : ood_metrics(p.test, *p.ood, score))
        // Without per-sample probabilities mutual information is 0 everywhere: no score, so absent.
        row["ood_" + k + suffix] = score == "mutual_info" && !p.test.sample_probs.defined() ? nlohmann::json()
                                                                                            : nlohmann::json(v);
    curves.ood_in = to_vector(uncertainty_score(p.test, "entropy"));
    curves.ood_out = to_vector(uncertainty_score(*p.ood, "entropy"));
  }
  if (p.grid) {
    curves.grid_x = to_vector(d.grid->x.squeeze(1));
    curves.grid_mean = to_vector(p.grid->mean);
    curves.grid_lo = to_vector(predictive_quantile(*p.grid, (1 - level) / 2));
    curves.grid_hi = to_vector(predictive_quantile(*p.grid, (1 + level) / 2));
  }
}

/// Inputs spanning the training and test inputs (plus 5% each side), for the band plot.
Dataset band_grid(const Dataset& train, const Dataset& test) {
  auto x = torch::cat({train.x.flatten(), test.x.flatten()});
  double lo = x.min().item<double>(), hi = x.max().item<double>(), pad = 0.05 * (hi - lo + 1e-12);
  Dataset g;
  g.x = torch::linspace(lo - pad, hi + pad, kGridPoints, torch::dtype(torch::kFloat64)).to(train.x.dtype()).unsqueeze(1);
  g.y = torch::zeros({kGridPoints}, train.y.options());
  g.task = Task::Regression;
  g.name = "the band plot's grid";
  g.standardize_inputs = train.standardize_inputs;
  return g;
}

/// The OOD set must look like the training data to the model: same task, inputs, label space.
void check_ood(const Dataset& ood, const Dataset& train, const std::string& spec) {
  if (train.task != Task::Classification)
    throw InvalidArgument("--ood needs a classification task: its scores (entropy, max-probability, "
                          "mutual information) are of class probabilities");
  if (ood.task != train.task || ood.input_shape() != train.input_shape() || ood.num_classes != train.num_classes)
    throw InvalidArgument(fmt::format(
        "--ood '{}' has {} inputs of shape [{}] with {} classes, but --data has [{}] with {}; hold classes "
        "out with the classes= filter of the same source (e.g. --data 'fmnist:train?classes=0-7' "
        "--ood 'fmnist:test?classes=8-9'), which keeps the label space",
        spec, to_string(ood.task), fmt::join(ood.input_shape(), ", "), ood.num_classes,
        fmt::join(train.input_shape(), ", "), train.num_classes));
}

}  // namespace

void add_compare(CLI::App& app) {
  auto* cmd = app.add_subcommand("compare", "fit several methods and compare them on test data");
  struct Args {
    CommonOptions common;
    TrainFlags flags;
    std::string data, test, ood, methods = "map", json, report, rank_by = "nll";
    int64_t samples = 32;
    double conformal_level = 0.9;
    bool force = false;
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("--data", args->data, "training data spec")->required();
  cmd->add_option("--test", args->test, "test data spec")->required();
  cmd->add_option("--ood", args->ood, "out-of-distribution data spec: adds ood_auroc, ood_aupr, ood_fpr95 "
                                      "(e.g. fmnist:test?classes=8-9 with --data fmnist:train?classes=0-7)");
  cmd->add_option("--methods", args->methods, "methods, comma-separated (';' also separates)")->capture_default_str();
  cmd->add_option("--json", args->json, "write results as JSON");
  cmd->add_option("--report", args->report, "write an HTML report (index.html and SVG plots) into this directory");
  cmd->add_option("--rank-by", args->rank_by, "result key to rank methods by (accuracy, ood_auroc, ...)")
      ->capture_default_str();
  cmd->add_option("--samples", args->samples, "weight samples for sampled predictives")->capture_default_str();
  cmd->add_option("--conformal-level", args->conformal_level,
                  "nominal coverage of conformal and credible sets (needs holdout=cal:F in --data)")
      ->capture_default_str();
  cmd->add_flag("--force", args->force, "replace --json if it exists, write into a non-empty --report directory");
  args->common.add(*cmd);
  args->flags.add(*cmd);
  cmd->callback([args] {
    args->common.apply();
    args->flags.train.quiet = args->common.quiet;
    const bool quiet = args->common.quiet;
    check_optional_output(args->json, args->force, "--json");
    const double level = args->conformal_level;
    if (!(level > 0.0 && level < 1.0))
      throw InvalidArgument(fmt::format("--conformal-level must be in (0, 1) (e.g. 0.9), got {}", level));
    const Criterion criterion = criterion_for(args->rank_by, level);
    if (!args->report.empty()) {
      check_report_dir(args->report, args->force);
      require_gnuplot();
    }
    auto methods = split_methods(args->methods);
    for (const auto& m : methods) resolve_fit_method(m);  // fail fast on a typo before any training
    auto dtype = args->common.torch_dtype();
    FitRequest req;
    req.data = load_data(args->data, {dtype});
    args->flags.fill(req);
    req.device = args->common.torch_device();
    req.dtype = dtype;
    EvalData eval;
    eval.test = load_data(args->test, {dtype}).fit;
    eval.cal = req.data.cal;
    const Dataset& train = req.data.fit;
    if (!args->ood.empty()) {
      eval.ood = load_data(args->ood, {dtype}).fit;
      check_ood(*eval.ood, train, args->ood);
    }
    const bool one_d = train.task == Task::Regression && train.input_shape() == std::vector<int64_t>{1};
    if (!args->report.empty() && one_d) eval.grid = band_grid(train, eval.test);
    if (eval.cal && eval.cal->size() < kMinCalibration)
      throw InvalidArgument(fmt::format(
          "the calibration part of --data has {} points; conformal sets need at least {} "
          "(use e.g. holdout=cal:1000 or a larger fraction)",
          eval.cal->size(), kMinCalibration));
    if (!quiet)
      fmt::print("{} | fit on {} ({}), test on {} ({})\n", runtime_summary(), args->data, train.size(),
                 args->test, eval.test.size());
    if (!eval.cal && !quiet)
      fmt::print("hint: add holdout=cal:0.1 to --data (>= {} points) to also report conformal "
                 "and credible set coverage\n", kMinCalibration);

    std::unique_ptr<FittedModel> map;  // one MAP fit, shared by post-hoc methods
    std::optional<Predictions> map_predictions;
    std::vector<Row> rows;
    std::vector<MethodCurves> curves;
    auto add_row = [&](Row row, const Predictions& p, double fit_seconds) {
      MethodCurves c;
      c.method = row["method"].get<std::string>();
      evaluate(p, eval, level, row, c);
      row["fit_seconds"] = fit_seconds;
      row["predict_seconds"] = p.seconds;
      rows.push_back(std::move(row));
      curves.push_back(std::move(c));
    };
    nlohmann::json failed = nlohmann::json::array();
    for (const auto& method : methods) {
      auto [info, options] = resolve_fit_method(method);
      FittedModel fitted;
      if (info->name == "map" && map && !options.given("optimizer")) {
        fitted = *map;
      } else {
        if (info->starts_from_map(options) && !map) {
          FitRequest map_req = req;
          map_req.method = "map";
          map = std::make_unique<FittedModel>(fit(map_req));
        }
        req.method = method;
        req.map = info->starts_from_map(options) ? map.get() : nullptr;
        try {
          fitted = fit(req);
        } catch (const NumericalError& e) {  // one method's divergence does not cost the others' rows
          if (info->name == "map") throw;
          fmt::print(stderr, "warning: {} failed and is left out of the comparison: {}\n", method, e.what());
          failed.push_back({{"method", method}, {"error", e.what()}});
          continue;
        }
        if (info->name == "map" && !map) map = std::make_unique<FittedModel>(fitted);
      }
      auto p = predict_all(fitted, eval, args->samples);
      Row row = {{"method", method}};
      add_chain_diagnostics(fitted, p.test, row);
      add_fit_facts(fitted, row);
      double fit_seconds = fitted.info.value("fit_seconds", 0.0);
      if (info->starts_from_map(options)) fit_seconds += map->info.value("fit_seconds", 0.0);
      if (method == "map") map_predictions = p;
      add_row(std::move(row), p, fit_seconds);
    }

    // The non-Bayesian baseline: MAP with a temperature fitted on held-out labelled data.
    const std::optional<Dataset>& tune = req.data.val ? req.data.val : req.data.cal;
    if (train.task == Task::Classification && tune) {
      if (!map) {
        FitRequest map_req = req;
        map_req.method = "map";
        map_req.map = nullptr;
        map = std::make_unique<FittedModel>(fit(map_req));
      }
      if (!map_predictions) map_predictions = predict_all(*map, eval, args->samples);
      auto start = std::chrono::steady_clock::now();
      auto t = fit_temperature(map->predict(*tune, {args->samples}).to(torch::kCPU), tune->y);
      Predictions scaled = *map_predictions;
      scaled.test = apply_temperature(scaled.test, t.temperature);
      if (scaled.cal) scaled.cal = apply_temperature(*scaled.cal, t.temperature);
      if (scaled.ood) scaled.ood = apply_temperature(*scaled.ood, t.temperature);
      Row row = {{"method", "map+temperature"}, {"temperature", t.temperature}};
      add_row(std::move(row), scaled, map->info.value("fit_seconds", 0.0) + seconds_since(start));
    } else if (train.task == Task::Classification && !quiet) {
      fmt::print("hint: add holdout=val:0.1 to --data to also compare MAP with a fitted temperature\n");
    }

    const bool ranked = rank_rows(rows, criterion);
    print_table(rows);
    std::string recommendation;
    if (ranked) {
      auto lines = ranking_lines(rows, criterion);
      for (const auto& l : lines) fmt::print("{}\n", l);
      recommendation = lines.back();
    } else {
      fmt::print(stderr, "warning: no method has '{}' (--rank-by); results are not ranked\n", criterion.key);
    }
    if (!args->json.empty()) {
      nlohmann::json j = {{"data", args->data}, {"test", args->test}, {"model", args->flags.model},
                          {"runtime", runtime_summary()}, {"rank_by", criterion.key},
                          {"results", nlohmann::json::array()}};
      if (!args->ood.empty()) j["ood"] = args->ood;
      if (!failed.empty()) j["failed"] = failed;
      for (const auto& r : rows) j["results"].push_back(r);
      write_json(args->json, j, true);
    }
    if (!args->report.empty()) {
      ReportData report;
      report.facts = {{"training data", fmt::format("{} ({} fitted)", args->data, train.size())},
                      {"test data", fmt::format("{} ({})", args->test, eval.test.size())}};
      if (eval.ood) report.facts.emplace_back("OOD data", fmt::format("{} ({})", args->ood, eval.ood->size()));
      report.facts.emplace_back("model", args->flags.model);
      report.facts.emplace_back("runtime", runtime_summary());
      report.task = train.task;
      report.level = level;
      report.rank_by = fmt::format("{} ({})", criterion.key, criterion.describe());
      report.recommendation = recommendation;
      report.rows = rows;
      report.methods = curves;
      if (one_d) {
        report.train_x = to_vector(train.x.flatten()), report.train_y = to_vector(train.y);
        report.test_x = to_vector(eval.test.x.flatten()), report.test_y = to_vector(eval.test.y);
      }
      write_report(args->report, report);
      if (!quiet) fmt::print("report: {}/index.html\n", args->report);
    }
  });
}

}  // namespace credence::cli
