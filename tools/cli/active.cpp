// active: pool-based active learning, a learning curve per method and acquisition.
#include <fmt/format.h>

#include <cstdio>

#include "common.h"
#include "gnuplot.h"
#include "report.h"
#include "credence/core/error.h"
#include "credence/core/runtime.h"
#include "credence/sequential/acquisition.h"
#include "credence/sequential/active.h"

namespace credence::cli {

void add_active(CLI::App& app) {
  auto* cmd = app.add_subcommand("active", "pool-based active learning: a learning curve per acquisition");
  struct Args {
    CommonOptions common;
    TrainFlags flags;
    ActiveLearningOptions al;
    std::string pool, test, json, report, methods = "ensemble", acquisitions = "bald";
    int64_t seeds = 1;
    bool force = false, random_initial = false;
  };
  auto args = std::make_shared<Args>();
  auto& al = args->al;
  cmd->add_option("--pool", args->pool, "data spec of the unlabelled pool (its labels are revealed when queried)")
      ->required();
  cmd->add_option("--test", args->test, "data spec the learning curve is measured on")->required();
  cmd->add_option("--method", args->methods, "METHOD spec, or several (bald and variance need draws)")
      ->capture_default_str();
  cmd->add_option("--acquisition", args->acquisitions, "bald, entropy, variance, margin or random (or several)")
      ->capture_default_str();
  cmd->add_option("--initial", al.initial, "labelled rows to start with")
      ->capture_default_str()
      ->check(whole_number_at_least(2, "--initial 20"));
  cmd->add_option("--selection", al.selection, "a batch from the scores: power (drawn in proportion to the scores) "
                  "or top (the best k)")
      ->capture_default_str()
      ->check(CLI::IsMember({"top", "power"}));
  cmd->add_flag("--random-initial", args->random_initial, "draw the initial rows at random (default: balanced over classes)");
  cmd->add_option("--batch", al.batch, "rows labelled per round")->capture_default_str()->check(whole_number_at_least(1, "--batch 10"));
  cmd->add_option("--budget", al.budget, "labelled rows at the end")->capture_default_str()->check(whole_number_at_least(2, "--budget 500"));
  cmd->add_option("--samples", al.samples, "predictive draws of Gaussian posteriors")->capture_default_str();
  cmd->add_option("--seeds", args->seeds, "runs per row, seeds --seed, --seed + 1, ...")
      ->capture_default_str()
      ->check(whole_number_at_least(1, "--seeds 5"));
  cmd->add_option("--json", args->json, "write the learning curves as JSON");
  cmd->add_option("--report", args->report, "write an HTML page with the learning curves to this directory");
  cmd->add_flag("--force", args->force, "replace --json and --report's files if they exist");
  args->common.add(*cmd);
  args->flags.add(*cmd);
  cmd->callback([args] {
    args->common.apply();
    check_optional_output(args->json, args->force, "--json");
    const auto methods = split_methods(args->methods);
    const auto acquisitions = split_choices(args->acquisitions, active_acquisitions(), "--acquisition");
    if (!args->report.empty()) {
      require_gnuplot();
      check_report_dir(args->report, args->force);
    }
    auto& al = args->al;
    args->flags.fill(al);
    al.balanced = !args->random_initial;
    for (const auto& m : methods)  // every row's options are checked before the first fit
      for (const auto& a : acquisitions) {
        auto o = al;
        o.method = m;
        o.acquisition = a;
        o.validate();
      }
    auto pool = load_data(args->pool, {args->common.torch_dtype()}).fit;
    auto test = load_data(args->test, {args->common.torch_dtype()}).fit;
    const bool classification = pool.task == Task::Classification;
    const std::string metric = classification ? "accuracy" : "rmse";
    if (!args->common.quiet) fmt::print("{}\n", runtime_summary());
    nlohmann::json runs = nlohmann::json::array();
    std::vector<Curve> curves;
    std::vector<std::vector<std::string>> table = {
        {"method", "acquisition", "seeds", "final " + metric, "final nll", "fit seconds (all rounds)"}};
    for (const auto& method : methods)
      for (const auto& acquisition : acquisitions) {
        std::vector<std::vector<double>> row_curves;
        std::vector<double> labels, final_metric, final_nll, seconds;
        for (int64_t s = 0; s < args->seeds; ++s) {
          auto o = al;
          o.method = method;
          o.acquisition = acquisition;
          o.seed = args->flags.train.seed + s;
          nlohmann::json rounds = nlohmann::json::array();
          std::vector<double> curve;
          double fit_total = 0;
          labels.clear();
          auto on_round = [&](const ActiveRound& r) {
            nlohmann::json j = {{"labels", r.labels}, {"fit_seconds", r.fit_seconds}, {"score_seconds", r.score_seconds},
                                {"added", r.added}};
            for (const auto& [k, v] : r.metrics) j[k] = v;
            rounds.push_back(j);
            curve.push_back(r.metrics.at(metric));
            labels.push_back(static_cast<double>(r.labels));
            fit_total += r.fit_seconds;
            if (!args->common.quiet) {
              std::string metrics;
              for (const auto& [k, v] : r.metrics) metrics += fmt::format(" {} {:.4f}", k, v);
              fmt::print("{} {} seed {}: {:>5} labels{}  (fit {:.1f}s)\n", method, acquisition, o.seed, r.labels,
                         metrics, r.fit_seconds);
              std::fflush(stdout);
            }
          };
          run_active_learning(pool, test, o, on_round);
          final_metric.push_back(curve.back());
          final_nll.push_back(rounds.back()["nll"].get<double>());
          seconds.push_back(fit_total);
          row_curves.push_back(curve);
          runs.push_back({{"method", method}, {"acquisition", acquisition}, {"seed", o.seed}, {"rounds", rounds}});
        }
        curves.push_back(mean_curve(method + " " + acquisition, labels, row_curves));
        table.push_back({method, acquisition, std::to_string(args->seeds), mean_se_text(final_metric),
                         mean_se_text(final_nll), mean_se_text(seconds)});
      }
    if (!args->json.empty())
      write_json(args->json,
                 {{"pool", args->pool}, {"test", args->test}, {"runtime", runtime_summary()}, {"model", al.model},
                  {"runs", runs}},
                 args->force);
    if (!args->report.empty())
      write_curves_report(args->report, "credence active",
                          {{"pool", fmt::format("{} ({} rows)", args->pool, pool.size())},
                           {"test", fmt::format("{} ({} rows)", args->test, test.size())},
                           {"model", al.model},
                           {"labels", fmt::format("{} initial, {} per round ({} of the scores), to {}", al.initial,
                                                  al.batch, al.selection, al.budget)},
                           {"runtime", runtime_summary()}},
                          table, "labelled examples", "test " + metric, curves);
  });
}

}  // namespace credence::cli
