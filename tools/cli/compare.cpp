// compare: fit several methods on the same data and model, evaluate each on a test set.
#include <fmt/format.h>

#include <chrono>

#include "common.h"
#include "credence/core/error.h"
#include "credence/core/spec.h"
#include "credence/core/runtime.h"
#include "credence/eval/calibration.h"
#include "credence/eval/conformal.h"
#include "credence/eval/metrics.h"

namespace credence::cli {
namespace {

// "map,laplace:hessian=kron,subset=last_layer;vi": a piece whose first '=' comes before any ':'
// continues the previous method's options.
std::vector<std::string> split_methods(const std::string& text) {
  std::vector<std::string> out;
  for (const auto& group : split(text, ';')) {
    for (const auto& piece : split(group, ',')) {
      auto t = trim(piece);
      if (t.empty()) continue;
      size_t eq = t.find('=');
      size_t colon = t.find(':');
      if (!out.empty() && eq != std::string::npos && (colon == std::string::npos || eq < colon))
        out.back() += "," + t;
      else
        out.push_back(t);
    }
  }
  if (out.empty()) throw InvalidArgument("--methods is empty (e.g. --methods map)");
  return out;
}

// Split conformal needs enough calibration points for its quantile to be stable.
constexpr int64_t kMinCalibration = 100;

/// conformal_* (APS sets / normalized-residual intervals calibrated on `cal`) and credible_*
/// (the predictive's own sets/intervals) of nominal `level`, evaluated on the test set.
void add_set_metrics(const Predictive& cal, const torch::Tensor& y_cal, const Predictive& test,
                     const torch::Tensor& y_test, double level, Row& row) {
  SetQuality conformal, credible;
  if (test.task == Task::Classification) {
    conformal = evaluate_sets(conformal_sets(cal, y_cal, test, level, aps()), y_test);
    credible = evaluate_sets(credible_sets(test, level), y_test);
  } else {
    conformal = evaluate_intervals(conformal_intervals(cal, y_cal, test, level), y_test);
    credible = evaluate_intervals(credible_intervals(test, level), y_test);
  }
  row["conformal_coverage"] = conformal.coverage;
  row["conformal_set_size"] = conformal.size;
  row["credible_coverage"] = credible.coverage;
  row["credible_set_size"] = credible.size;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

void add_compare(CLI::App& app) {
  auto* cmd = app.add_subcommand("compare", "fit several methods and compare them on test data");
  struct Args {
    CommonOptions common;
    TrainFlags flags;
    std::string data, test, methods = "map", json;
    int64_t samples = 32;
    double conformal_level = 0.9;
    bool force = false;
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("--data", args->data, "training data spec")->required();
  cmd->add_option("--test", args->test, "test data spec")->required();
  cmd->add_option("--methods", args->methods, "methods, comma-separated (';' also separates)")->capture_default_str();
  cmd->add_option("--json", args->json, "write results as JSON");
  cmd->add_option("--samples", args->samples, "weight samples for sampled predictives")->capture_default_str();
  cmd->add_option("--conformal-level", args->conformal_level,
                  "nominal coverage of conformal and credible sets (needs holdout=cal:F in --data)")
      ->capture_default_str();
  cmd->add_flag("--force", args->force, "replace --json if it exists");
  args->common.add(*cmd);
  args->flags.add(*cmd);
  cmd->callback([args] {
    args->common.apply();
    args->flags.train.quiet = args->common.quiet;
    refuse_existing(args->json, args->force, "--json");
    const double level = args->conformal_level;
    if (!(level > 0.0 && level < 1.0))
      throw InvalidArgument(fmt::format("--conformal-level must be in (0, 1) (e.g. 0.9), got {}", level));
    auto methods = split_methods(args->methods);
    for (const auto& m : methods) resolve_method(m);  // fail fast on a typo before any training
    auto dtype = args->common.torch_dtype();
    FitRequest req;
    req.data = load_data(args->data, {dtype});
    req.model = args->flags.model;
    req.likelihood = args->flags.likelihood;
    req.train = args->flags.train;
    req.device = args->common.torch_device();
    req.dtype = dtype;
    Dataset test = load_data(args->test, {dtype}).fit;
    const std::optional<Dataset>& cal = req.data.cal;
    if (cal && cal->size() < kMinCalibration)
      throw InvalidArgument(fmt::format(
          "the calibration part of --data has {} points; conformal sets need at least {} "
          "(use e.g. holdout=cal:1000 or a larger fraction)",
          cal->size(), kMinCalibration));
    if (!args->common.quiet)
      fmt::print("{} | fit on {} ({}), test on {} ({})\n", runtime_summary(), args->data, req.data.fit.size(),
                 args->test, test.size());
    if (!cal && !args->common.quiet)
      fmt::print("hint: add holdout=cal:0.1 to --data (>= {} points) to also report conformal "
                 "and credible set coverage\n", kMinCalibration);

    std::unique_ptr<FittedModel> map;  // one MAP fit, shared by post-hoc methods
    std::vector<Row> rows;
    for (const auto& method : methods) {
      auto [info, options] = resolve_method(method);
      FittedModel fitted;
      if (info->name == "map" && map && !options.given("optimizer")) {
        fitted = *map;
      } else {
        if (info->post_hoc && !map) {
          FitRequest map_req = req;
          map_req.method = "map";
          map = std::make_unique<FittedModel>(fit(map_req));
        }
        req.method = method;
        req.map = info->post_hoc ? map.get() : nullptr;
        fitted = fit(req);
        if (info->name == "map" && !map) map = std::make_unique<FittedModel>(fitted);
      }
      auto start = std::chrono::steady_clock::now();
      auto p = fitted.predict(test, {args->samples}).to(torch::kCPU);
      double predict_seconds = seconds_since(start);
      Row row = {{"method", method}};
      for (const auto& [k, v] : standard_metrics(p, test.y)) row[k] = v;
      if (p.task == Task::Classification)
        row["mce"] = mce(p, test.y);
      else
        row["crps"] = crps(p, test.y);
      if (cal) {
        auto p_cal = fitted.predict(*cal, {args->samples}).to(torch::kCPU);
        add_set_metrics(p_cal, cal->y, p, test.y, level, row);
      }
      add_chain_diagnostics(fitted, p, row);
      double fit_seconds = fitted.info.value("fit_seconds", 0.0);
      if (info->post_hoc) fit_seconds += map->info.value("fit_seconds", 0.0);
      row["fit_seconds"] = fit_seconds;
      row["predict_seconds"] = predict_seconds;
      rows.push_back(row);
    }
    print_table(rows);
    if (!args->json.empty()) {
      nlohmann::json j = {{"data", args->data}, {"test", args->test}, {"model", args->flags.model},
                          {"runtime", runtime_summary()}, {"results", nlohmann::json::array()}};
      for (const auto& r : rows) j["results"].push_back(r);
      write_json(args->json, j, true);
    }
  });
}

}  // namespace credence::cli
