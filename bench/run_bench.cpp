// run_bench: fits methods on data specs over repetitions, evaluates them on test data and writes
// the rows, a per-(data, method) summary (mean and standard error over repetitions) as JSON, and a
// Markdown table.
//
//   run_bench --data "uci:DIR?split={split}&part=train" --test "uci:DIR?split={split}&part=test"
//             --model mlp:50 --methods map --reps 3 --json out.json --markdown out.md
//
// In --data and --test, {split} and {seed} are replaced by the repetition index r; the training
// seed is --seed + r.
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <torch/version.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "bench_common.h"
#include "credence/core/error.h"
#include "credence/core/runtime.h"
#include "credence/core/spec.h"
#include "credence/eval/metrics.h"
#include "credence/fit/fit.h"

namespace cb = credence::bench;
using json = nlohmann::ordered_json;  // keeps keys in insertion order

namespace {

// Same rule as `credence compare --methods`: "map,laplace:hessian=kron,subset=last_layer;vi" -- a
// piece whose first '=' comes before any ':' continues the previous method's options.
std::vector<std::string> split_methods(const std::string& text) {
  std::vector<std::string> out;
  for (const auto& group : credence::split(text, ';')) {
    for (const auto& piece : credence::split(group, ',')) {
      auto t = credence::trim(piece);
      if (t.empty()) continue;
      size_t eq = t.find('='), colon = t.find(':');
      if (!out.empty() && eq != std::string::npos && (colon == std::string::npos || eq < colon))
        out.back() += "," + t;
      else
        out.push_back(t);
    }
  }
  if (out.empty()) throw credence::InvalidArgument("--methods is empty (e.g. --methods map)");
  return out;
}

std::vector<std::string> split_specs(const std::string& text, const char* what) {
  std::vector<std::string> out;
  for (const auto& piece : credence::split(text, ';')) {
    auto t = credence::trim(piece);
    if (!t.empty()) out.push_back(t);
  }
  if (out.empty()) throw credence::InvalidArgument(fmt::format("{} is empty", what));
  return out;
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos + to.size()))
    s.replace(pos, from.size(), to);
  return s;
}

std::string substitute(const std::string& spec, int64_t split, uint64_t seed) {
  return replace_all(replace_all(spec, "{split}", std::to_string(split)), "{seed}", std::to_string(seed));
}

// Keys of a row that are not metrics to summarize.
bool is_metric_key(const std::string& k) {
  static const std::vector<std::string> skip = {"data", "data_spec", "test", "test_spec", "method",
                                                "rep", "seed", "n_train", "n_test"};
  return std::find(skip.begin(), skip.end(), k) == skip.end();
}

// "mean ± se" with the mean rounded to the standard error's second significant digit; the mean
// alone (4 significant digits) when there is no standard error.
std::string format_mean_se(double mean, double se) {
  if (std::isnan(se)) return fmt::format("{:.4g}", mean);  // one repetition
  if (!std::isfinite(se) || se <= 0) return fmt::format("{:.4g} ± {}", mean, se);
  int decimals = std::clamp(1 - static_cast<int>(std::floor(std::log10(se))), 0, 6);
  return fmt::format("{:.{}f} ± {:.{}f}", mean, decimals, se, decimals);
}

// Per data set, each method's test NLL minus the baseline's on the same (split, seed): paired
// differences cancel most of the split-to-split spread that swamps small effects.
std::string paired_table(const json& runs, const std::vector<std::string>& datas,
                         const std::vector<std::string>& methods, const std::string& baseline) {
  std::ostringstream md;
  md << fmt::format("\nPaired test NLL difference from `{}` (negative: better than it)\n\n", baseline);
  md << "| data | method | NLL | baseline NLL | difference |\n|---|---|---|---|---|\n";
  for (const auto& m : methods) {
    if (m == baseline) continue;
    std::vector<double> set_means, base_means;
    for (const auto& d : datas) {
      std::map<uint64_t, double> base;
      for (const auto& row : runs)
        if (row["data"] == d && row["method"] == baseline) base[row["seed"].get<uint64_t>()] = row["nll"].get<double>();
      std::vector<double> mine, theirs, diff;
      for (const auto& row : runs) {
        if (row["data"] != d || row["method"] != m) continue;
        auto it = base.find(row["seed"].get<uint64_t>());
        if (it == base.end()) continue;
        mine.push_back(row["nll"].get<double>());
        theirs.push_back(it->second);
        diff.push_back(mine.back() - theirs.back());
      }
      if (diff.empty()) continue;
      set_means.push_back(cb::mean(mine));
      base_means.push_back(cb::mean(theirs));
      md << fmt::format("| `{}` | {} | {:.4f} | {:.4f} | {} |\n", d, m, set_means.back(), base_means.back(),
                        format_mean_se(cb::mean(diff), diff.size() > 1 ? cb::stderr_of_mean(diff) : NAN));
    }
    if (set_means.size() > 1)
      md << fmt::format("| mean over {} sets | {} | {:.4f} | {:.4f} | {:+.4f} |\n", set_means.size(), m,
                        cb::mean(set_means), cb::mean(base_means), cb::mean(set_means) - cb::mean(base_means));
  }
  return md.str();
}

struct Args {
  std::string data, test, methods = "map", model = "mlp:50", likelihood, json_path, markdown_path;
  std::string baseline;
  int64_t reps = 3, seeds = 1, samples = 32;
  int64_t epochs = 20, batch_size = 128;
  double lr = 1e-3;
  std::string prior = "auto";
  uint64_t seed = 0;
  int threads = 1;
  bool quiet = false;
};

}  // namespace

int main(int argc, char** argv) {
  credence::use_fast_blas_kernels(argv);
  Args a;
  CLI::App app{"credence benchmark runner: data specs x methods x repetitions"};
  app.add_option("--data", a.data, "training data specs, ';'-separated ({split}, {seed} = repetition)")->required();
  app.add_option("--test", a.test, "test data specs, one per --data spec or one for all")->required();
  app.add_option("--methods", a.methods, "methods, comma-separated (';' also separates)")->capture_default_str();
  app.add_option("--model", a.model, "model spec")->capture_default_str();
  app.add_option("--likelihood", a.likelihood, "likelihood (default: the task's)");
  app.add_option("--reps", a.reps, "repetitions (r = 0..N-1: {split} = r, seed = --seed + r)")->capture_default_str();
  app.add_option("--epochs", a.epochs, "training epochs")->capture_default_str();
  app.add_option("--batch-size", a.batch_size, "minibatch size")->capture_default_str();
  app.add_option("--lr", a.lr, "learning rate")->capture_default_str();
  app.add_option("--prior-precision", a.prior, "prior precision: auto (5e-4 * N), one value, or one per layer")
      ->capture_default_str();
  app.add_option("--seed", a.seed, "base seed")->capture_default_str();
  app.add_option("--seeds", a.seeds, "rounds of all repetitions, round k with seeds --seed + 100 k + r")
      ->capture_default_str();
  app.add_option("--baseline", a.baseline, "a method in --methods: also print every other method's paired "
                                           "NLL difference from it");
  app.add_option("--samples", a.samples, "weight samples for sampled predictives")->capture_default_str();
  app.add_option("--json", a.json_path, "write rows and summary as JSON");
  app.add_option("--markdown", a.markdown_path, "write the summary as a Markdown table");
  app.add_option("--threads", a.threads, "ATen/OpenBLAS threads")->capture_default_str();
  app.add_flag("--quiet", a.quiet, "no per-run lines on stderr");
  CLI11_PARSE(app, argc, argv);

  try {
    credence::tune_allocator();
    credence::set_threads(a.threads);
    if (a.reps < 1) throw credence::InvalidArgument(fmt::format("--reps must be >= 1, got {}", a.reps));
    if (a.seeds < 1) throw credence::InvalidArgument(fmt::format("--seeds must be >= 1, got {}", a.seeds));
    auto datas = split_specs(a.data, "--data");
    auto tests = split_specs(a.test, "--test");
    if (tests.size() != datas.size() && tests.size() != 1)
      throw credence::InvalidArgument(fmt::format(
          "--test has {} specs for {} --data specs (give one per --data spec, or one for all)", tests.size(),
          datas.size()));
    auto methods = split_methods(a.methods);
    for (const auto& m : methods) credence::resolve_fit_method(m);  // fail fast on a typo
    if (!a.baseline.empty() && std::find(methods.begin(), methods.end(), a.baseline) == methods.end())
      throw credence::InvalidArgument(fmt::format("--baseline '{}' is not one of --methods", a.baseline));

    credence::TrainOptions train;
    train.epochs = a.epochs;
    train.batch_size = a.batch_size;
    train.lr = a.lr;
    train.prior = a.prior;
    train.quiet = true;
    train.validate();

    json header = {{"machine", cb::machine_summary()},
                   {"hostname", cb::hostname()},
                   {"nproc", cb::nproc()},
                   {"cpu", cb::cpu_model()},
                   {"runtime", credence::runtime_summary()},
                   {"libtorch", TORCH_VERSION},
                   {"blas", credence::blas_library()},
                   {"threads", credence::threads()},
                   {"date", cb::now_string()},
                   {"model", a.model},
                   {"likelihood", a.likelihood},
                   {"methods", methods},
                   {"reps", a.reps},
                   {"epochs", a.epochs},
                   {"batch_size", a.batch_size},
                   {"lr", a.lr},
                   {"prior_precision", a.prior},
                   {"seed", a.seed},
                   {"seeds", a.seeds}};
    if (!a.quiet)
      fmt::print(stderr, "{}\n{}\n", header["machine"].get<std::string>(), credence::runtime_summary());

    json runs = json::array();
    for (size_t di = 0; di < datas.size(); ++di) {
      const auto& data_t = datas[di];
      const auto& test_t = tests.size() == 1 ? tests[0] : tests[di];
      for (int64_t k = 0; k < a.seeds * a.reps; ++k) {
        const int64_t r = k % a.reps;
        const uint64_t seed = a.seed + 100 * static_cast<uint64_t>(k / a.reps) + static_cast<uint64_t>(r);
        const auto data_s = substitute(data_t, r, seed), test_s = substitute(test_t, r, seed);
        credence::FitRequest req;
        req.data = credence::load_data(data_s);
        req.model = a.model;
        req.likelihood = a.likelihood;
        req.train = train;
        req.train.seed = seed;
        auto test = credence::load_data(test_s).fit;

        std::unique_ptr<credence::FittedModel> map;  // one MAP fit per (data, rep), shared
        double map_seconds = 0;
        for (const auto& method : methods) {
          auto [info, options] = credence::resolve_fit_method(method);
          auto fit_map = [&] {
            credence::FitRequest map_req = req;
            map_req.method = "map";
            auto start = std::chrono::steady_clock::now();
            map = std::make_unique<credence::FittedModel>(credence::fit(map_req));
            map_seconds = cb::seconds_since(start);
          };
          credence::FittedModel fitted;
          double fit_seconds = 0;
          if (info->name == "map" && options.values() == credence::resolve_method("map").second.values()) {
            if (!map) fit_map();
            fitted = *map;
            fit_seconds = map_seconds;
          } else if (info->starts_from_map(options)) {
            if (!map) fit_map();
            req.method = method;
            req.map = map.get();
            auto start = std::chrono::steady_clock::now();
            fitted = credence::fit(req);
            fit_seconds = cb::seconds_since(start) + map_seconds;  // the MAP fit is part of its cost
          } else {
            req.method = method;
            req.map = nullptr;
            auto start = std::chrono::steady_clock::now();
            fitted = credence::fit(req);
            fit_seconds = cb::seconds_since(start);
          }
          auto start = std::chrono::steady_clock::now();
          credence::PredictOptions popts;
          popts.samples = a.samples;
          popts.seed = seed;
          auto p = fitted.predict(test, popts).to(torch::kCPU);
          double predict_seconds = cb::seconds_since(start);
          json row = {{"data", data_t},   {"data_spec", data_s},           {"test", test_t},
                      {"test_spec", test_s}, {"method", method},          {"rep", r},
                      {"seed", seed},       {"n_train", req.data.fit.size()}, {"n_test", test.size()}};
          for (const auto& [k, v] : credence::standard_metrics(p, test.y)) row[k] = v;
          for (const auto& [k, v] : credence::convergence_metrics(fitted, p)) row[k] = v;
          row["fit_seconds"] = fit_seconds;
          row["predict_seconds"] = predict_seconds;
          if (!a.quiet) fmt::print(stderr, "{}\n", row.dump());
          runs.push_back(row);
        }
      }
    }

    // Summary: mean and standard error over repetitions of every numeric metric, per (data, method),
    // in the order first seen.
    json summary = json::array();
    std::vector<std::string> metric_names;
    for (const auto& d : datas) {
      for (const auto& m : methods) {
        std::map<std::string, std::vector<double>> values;
        std::vector<std::string> order;
        for (const auto& row : runs) {
          if (row["data"] != d || row["method"] != m) continue;
          for (const auto& [k, v] : row.items()) {
            if (!is_metric_key(k) || !v.is_number()) continue;
            if (!values.count(k)) order.push_back(k);
            values[k].push_back(v.get<double>());
          }
        }
        json s = {{"data", d}, {"method", m}};
        for (const auto& k : order) {
          const auto& v = values[k];
          s[k] = {{"mean", cb::mean(v)}, {"stderr", cb::stderr_of_mean(v)}, {"n", v.size()}};
          if (std::find(metric_names.begin(), metric_names.end(), k) == metric_names.end())
            metric_names.push_back(k);
        }
        summary.push_back(s);
      }
    }
    // Timings last in the table.
    std::stable_partition(metric_names.begin(), metric_names.end(),
                          [](const std::string& k) { return k.find("seconds") == std::string::npos; });

    std::ostringstream md;
    md << "# credence benchmark\n\n";
    md << "- machine: " << header["machine"].get<std::string>() << "\n";
    md << "- runtime: " << credence::runtime_summary() << "\n";
    md << "- date: " << header["date"].get<std::string>() << "\n";
    md << fmt::format("- model `{}`, {} epochs, batch {}, lr {}, prior precision {}, {} repetitions x {} seed "
                      "rounds (mean ± standard error)\n",
                      a.model, a.epochs, a.batch_size, a.lr, a.prior, a.reps, a.seeds);
    for (size_t di = 0; di < datas.size(); ++di)
      md << fmt::format("- `{}` tested on `{}`\n", datas[di], tests.size() == 1 ? tests[0] : tests[di]);
    md << "\n| data | method |";
    for (const auto& k : metric_names) md << " " << k << " |";
    md << "\n|---|---|";
    for (size_t i = 0; i < metric_names.size(); ++i) md << "---|";
    md << "\n";
    for (const auto& s : summary) {
      md << "| `" << s["data"].get<std::string>() << "` | " << s["method"].get<std::string>() << " |";
      for (const auto& k : metric_names) {
        if (!s.contains(k)) {
          md << " |";
          continue;
        }
        const auto& e = s[k];
        double se = e["stderr"].is_number() ? e["stderr"].get<double>() : NAN;
        md << " " << format_mean_se(e["mean"].get<double>(), se) << " |";
      }
      md << "\n";
    }
    if (!a.baseline.empty()) md << paired_table(runs, datas, methods, a.baseline);
    fmt::print("{}", md.str());

    if (!a.json_path.empty()) {
      std::ofstream out(a.json_path);
      if (!out) throw credence::IoError(fmt::format("cannot write '{}'", a.json_path));
      out << json{{"header", header}, {"runs", runs}, {"summary", summary}}.dump(2) << "\n";
    }
    if (!a.markdown_path.empty()) {
      std::ofstream out(a.markdown_path);
      if (!out) throw credence::IoError(fmt::format("cannot write '{}'", a.markdown_path));
      out << md.str();
    }
  } catch (const std::exception& e) {
    fmt::print(stderr, "run_bench: {}\n", e.what());
    return 1;
  }
  return 0;
}
