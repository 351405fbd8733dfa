// optimize: Bayesian optimization over a box with any method as the surrogate.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "common.h"
#include "gnuplot.h"
#include "report.h"
#include "credence/core/error.h"
#include "credence/core/files.h"
#include "credence/core/rng.h"
#include "credence/core/runtime.h"
#include "credence/core/spec.h"
#include "credence/sequential/bayesopt.h"
#include "credence/sequential/objectives.h"

namespace credence::cli {
namespace {

// "LO:HI,LO:HI,..." into the two bound vectors.
void parse_bounds(const std::string& text, std::vector<double>& lower, std::vector<double>& upper) {
  for (const auto& piece : split(text, ',')) {
    auto colon = piece.find(':');
    if (colon == std::string::npos)
      throw InvalidArgument(fmt::format("--bounds: '{}' is not LO:HI (e.g. --bounds 0:1,-5:5)", piece));
    lower.push_back(parse_double(piece.substr(0, colon), "--bounds LO"));
    upper.push_back(parse_double(piece.substr(colon + 1), "--bounds HI"));
  }
}

// Runs `command x1 x2 ...` and reads the value from the last line it prints.
double run_command(const std::string& command, const std::vector<double>& x) {
  std::string line = command;
  for (double v : x) line += fmt::format(" {:.17g}", v);
  FILE* pipe = ::popen(line.c_str(), "r");
  if (!pipe) throw IoError(fmt::format("--command: could not start '{}'", line));
  std::string out, last;
  char buffer[4096];
  while (std::fgets(buffer, sizeof buffer, pipe)) out += buffer;
  const int status = ::pclose(pipe);
  if (status != 0)
    throw IoError(fmt::format("--command '{}' failed (exit status {}); it must print the value and exit 0", line,
                              WIFEXITED(status) ? WEXITSTATUS(status) : status));
  std::stringstream lines(out);
  for (std::string l; std::getline(lines, l);)
    if (l.find_first_not_of(" \t\r") != std::string::npos) last = l;
  try {
    size_t used = 0;
    double value = std::stod(last, &used);
    if (last.find_first_not_of(" \t\r", used) == std::string::npos) return value;
  } catch (const std::exception&) {
  }
  throw IoError(fmt::format("--command '{}' printed '{}' as its last line; it must be one number", line, last));
}

// An observations CSV: a header, then rows of D coordinates and the value last.
struct Observations {
  std::vector<std::string> names;  ///< of the inputs
  std::vector<std::vector<double>> points;
  std::vector<double> values;
};

Observations read_observations(const std::string& path, size_t dim) {
  check_input_file(path, "observations file");
  std::ifstream in(path);
  std::string header;
  std::getline(in, header);
  Observations o;
  for (const auto& name : split(header, ',')) o.names.push_back(trim(name));
  if (o.names.size() != dim + 1)
    throw DataError(fmt::format("observations '{}': the header has {} columns; --bounds gives {} inputs, so it needs "
                                "{} (the inputs, then the value)",
                                path, o.names.size(), dim, dim + 1));
  const std::string value_name = o.names.back();
  o.names.pop_back();
  bool measured = false;
  for (std::string line; !measured && std::getline(in, line);) measured = !trim(line).empty();
  if (!measured) return o;  // nothing measured yet: the design starts
  // The rows themselves through the csv: loader (its checks and messages), the value as target.
  auto data = load_data(fmt::format("csv:{}?target={}", path, value_name), {torch::kFloat64}).fit;
  auto x = data.x.contiguous();
  for (int64_t i = 0; i < x.size(0); ++i) {
    o.points.emplace_back(x[i].data_ptr<double>(), x[i].data_ptr<double>() + dim);
    o.values.push_back(data.y[i].item<double>());
  }
  return o;
}

}  // namespace

void add_optimize(CLI::App& app) {
  auto* cmd = app.add_subcommand("optimize", "Bayesian optimization with any method as the surrogate");
  struct Args {
    CommonOptions common;
    BayesOptOptions bo;
    std::string objective, command, observations, bounds, json, state, report, methods = "gp", acquisitions = "ei";
    int64_t batch = 1, budget = 50, seeds = 1;
    bool resume = false, force = false;
  };
  auto args = std::make_shared<Args>();
  auto& bo = args->bo;
  auto* source = cmd->add_option_group("objective", "what to optimize (one of)");
  source->add_option("--objective", args->objective, "a test objective: " + objective_names());
  source->add_option("--command", args->command,
                     "a program run as `CMD x1 x2 ...` that prints the value on its last line");
  source->add_option("--observations", args->observations,
                     "a CSV of measured points (inputs, then the value): print the next --batch points and stop");
  source->require_option(1);
  cmd->add_option("--bounds", args->bounds, "the box, LO:HI per input (--command and --observations)");
  cmd->add_option("--method", args->methods,
                  "the surrogate: a regression METHOD spec, or several (each a row of the comparison)")
      ->capture_default_str();
  cmd->add_option("--model", bo.model, "the surrogate's network (methods that use one)")->capture_default_str();
  cmd->add_option("--likelihood", bo.likelihood, "gaussian (learned noise) or gaussian?sigma=S");
  cmd->add_option("--acquisition", args->acquisitions, "ei, ucb, thompson or random (or several: ei,thompson)")
      ->capture_default_str();
  cmd->add_option("--beta", bo.beta, "UCB: mean + sqrt(beta) sd")->capture_default_str();
  cmd->add_option("--batch", args->batch, "points per round")->capture_default_str()->check(whole_number_at_least(1, "--batch 4"));
  cmd->add_option("--budget", args->budget, "evaluations in all (initial design included)")
      ->capture_default_str()
      ->check(whole_number_at_least(1, "--budget 50"));
  cmd->add_option("--initial", bo.initial, "Sobol points before the surrogate")
      ->capture_default_str()
      ->check(whole_number_at_least(1, "--initial 10"));
  cmd->add_option("--steps", bo.steps, "optimizer steps per surrogate fit")
      ->capture_default_str()
      ->check(whole_number_at_least(1, "--steps 1000"));
  cmd->add_option("--lr", bo.train.lr, "surrogate step size (0: the method's own)")->capture_default_str();
  cmd->add_option("--samples", bo.samples, "predictive draws of Gaussian posteriors")->capture_default_str();
  cmd->add_option("--seed", bo.seed, "random seed (the first, with --seeds)")->capture_default_str();
  cmd->add_option("--seeds", args->seeds, "runs per row, seeds --seed, --seed + 1, ...")
      ->capture_default_str()
      ->check(whole_number_at_least(1, "--seeds 5"));
  cmd->add_flag("--maximize", bo.maximize, "maximize (the default minimizes)");
  cmd->add_option("--json", args->json, "write the runs (every evaluation) as JSON");
  cmd->add_option("--report", args->report, "write an HTML page with regret (or best-value) curves to this directory");
  cmd->add_option("--state", args->state, "save the loop's state here after every evaluation (one run)");
  cmd->add_flag("--resume", args->resume, "continue the run saved in --state");
  cmd->add_flag("--force", args->force, "replace --json, --state and --report's files if they exist");
  args->common.add(*cmd);
  cmd->callback([args] {
    args->common.apply();
    auto& opts = args->bo;
    const auto methods = split_methods(args->methods);
    const auto acquisitions = split_choices(args->acquisitions, optimization_acquisitions(), "--acquisition");
    const bool one_run = methods.size() == 1 && acquisitions.size() == 1 && args->seeds == 1;
    opts.method = methods[0];
    opts.acquisition = acquisitions[0];
    Objective objective;
    if (!args->objective.empty()) {
      objective = make_objective(args->objective);
      if (!args->bounds.empty()) throw InvalidArgument("--bounds: a named --objective has its own box");
      opts.lower = objective.lower;
      opts.upper = objective.upper;
    } else {
      if (args->bounds.empty()) throw InvalidArgument("--bounds LO:HI,... is needed with --command or --observations");
      parse_bounds(args->bounds, opts.lower, opts.upper);
    }
    if (!args->observations.empty()) {  // ask once: the file is the state
      if (!one_run) throw InvalidArgument("--observations asks one surrogate once: give one --method and --acquisition");
      auto measured = read_observations(args->observations, opts.lower.size());
      auto bo = BayesOpt::continuing(opts, measured.points, measured.values);
      auto next = bo.suggest(args->batch);
      std::cout << fmt::format("{}\n", fmt::join(measured.names, ","));
      for (const auto& x : next) std::cout << fmt::format("{:.17g}\n", fmt::join(x, ","));
      if (!args->json.empty())
        write_json(args->json, {{"suggestions", next}, {"observations", bo.size()}, {"round", bo.last_round()}},
                   args->force);
      return;
    }
    check_optional_output(args->json, args->force, "--json");
    if (!args->report.empty()) {
      require_gnuplot();
      check_report_dir(args->report, args->force);
    }
    if (args->resume && args->state.empty()) throw InvalidArgument("--resume needs --state FILE");
    if (!args->state.empty() && !one_run)
      throw InvalidArgument("--state keeps one run: give one --method and --acquisition, and --seeds 1");
    if (!args->state.empty() && !args->resume) check_output_path(args->state, args->force, "--state");
    const bool verbose = one_run && !args->common.quiet;
    const std::string source = args->objective.empty() ? args->command : args->objective;
    if (!args->common.quiet) fmt::print("{}\n", runtime_summary());

    // One run of the loop to the budget: its evaluations, best-so-far regret (or value) curve.
    auto run_once = [&](BayesOpt& bo, std::vector<double>& curve) {
      nlohmann::json trace = nlohmann::json::array();
      double best_f = INFINITY;
      const uint64_t seed = bo.options().seed;
      while (bo.size() < args->budget) {
        auto points = bo.suggest(std::min(args->batch, args->budget - bo.size()));
        const double seconds = bo.last_round().value("seconds", 0.0);
        for (const auto& x : points) {
          nlohmann::json e = {{"x", x}, {"suggest_seconds", seconds / points.size()}, {"round", bo.last_round()}};
          double y;
          if (!args->objective.empty()) {
            const double f = objective.value(x);
            const uint64_t key = rng_key(seed, Stream::Noise, 0x0b, bo.size());
            y = f + objective.noise * keyed_randn({1}, key, at::TensorOptions().dtype(at::kDouble)).item<double>();
            best_f = std::min(best_f, f);
            e["f"] = f;
            e["regret"] = best_f - objective.minimum;
          } else {
            y = run_command(args->command, x);
          }
          bo.observe(x, y);
          e["y"] = y;
          e["best"] = bo.best_value();
          curve.push_back(e.contains("regret") ? std::log10(std::max(e["regret"].get<double>(), 1e-12)) : bo.best_value());
          trace.push_back(e);
          if (!args->state.empty()) bo.save(args->state, true);
          if (verbose)
            fmt::print("{:>4}  y {:<12.6g} best {:<12.6g}{}  ({:.2f}s)\n", bo.size(), y, bo.best_value(),
                       e.contains("regret") ? fmt::format(" regret {:.3g}", e["regret"].get<double>()) : "", seconds);
        }
      }
      nlohmann::json run = {{"method", bo.options().method}, {"acquisition", bo.options().acquisition},
                            {"seed", seed}, {"options", bo.options().to_json()}, {"best_value", bo.best_value()},
                            {"best_point", bo.best_point()}, {"evaluations", trace}};
      if (!args->objective.empty()) run["regret"] = best_f - objective.minimum;
      return run;
    };

    nlohmann::json runs = nlohmann::json::array();
    std::vector<Curve> curves;
    std::vector<std::vector<std::string>> table = {
        {"surrogate", "acquisition", "seeds", args->objective.empty() ? "best value" : "final log10 regret",
         "seconds per evaluation"}};
    for (const auto& method : methods)
      for (const auto& acquisition : acquisitions) {
        std::vector<std::vector<double>> row_curves;
        std::vector<double> finals, seconds;
        for (int64_t s = 0; s < args->seeds; ++s) {
          BayesOptOptions o = opts;
          o.method = method;
          o.acquisition = acquisition;
          o.seed = opts.seed + s;
          BayesOpt bo = args->resume ? BayesOpt::load(args->state) : BayesOpt(o);
          if (args->resume && (bo.options().lower != opts.lower || bo.options().upper != opts.upper))
            throw InvalidArgument(fmt::format(
                "--state '{}' was saved for another box; give the same objective or --bounds", args->state));
          std::vector<double> curve;
          auto run = run_once(bo, curve);
          for (const auto& e : run["evaluations"]) seconds.push_back(e["suggest_seconds"].get<double>());
          finals.push_back(curve.empty() ? NAN : curve.back());
          row_curves.push_back(curve);
          if (!args->common.quiet)
            fmt::print("{} {} seed {}: best {:.6g} at ({})\n", method, acquisition, o.seed, bo.best_value(),
                       fmt::join(bo.best_point(), ", "));
          runs.push_back(run);
        }
        size_t n = row_curves[0].size();
        for (const auto& c : row_curves) n = std::min(n, c.size());
        for (auto& c : row_curves) c.resize(n);
        std::vector<double> x(n);
        for (size_t t = 0; t < n; ++t) x[t] = static_cast<double>(args->budget - static_cast<int64_t>(n) + t + 1);
        curves.push_back(mean_curve(method + " " + acquisition, x, row_curves));
        table.push_back({method, acquisition, std::to_string(args->seeds), mean_se_text(finals), mean_se_text(seconds)});
      }
    if (!args->json.empty())
      write_json(args->json,
                 {{"objective", source}, {"runtime", runtime_summary()}, {"budget", args->budget}, {"runs", runs}},
                 args->force);
    if (!args->report.empty())
      write_curves_report(args->report, "credence optimize",
                          {{"objective", source},
                           {"budget", std::to_string(args->budget)},
                           {"initial design", fmt::format("{} Sobol points", opts.initial)},
                           {"runtime", runtime_summary()}},
                          table, "evaluations",
                          args->objective.empty() ? (opts.maximize ? "best value (max)" : "best value (min)")
                                                  : "log10 simple regret",
                          curves);
  });
}

}  // namespace credence::cli
