#include "common.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/cuda.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iostream>

#include "credence/core/distributed.h"
#include "credence/core/error.h"
#include "credence/core/files.h"
#include "credence/core/runtime.h"
#include "credence/core/spec.h"

namespace credence::cli {

CLI::Validator whole_number_at_least(long long min, const std::string& example) {
  return CLI::Validator(
      [min, example](std::string& value) -> std::string {
        try {
          if (parse_int(value, "") >= min) return "";
        } catch (const InvalidArgument&) {
        }
        return fmt::format("must be a whole number >= {} (e.g. {}), got '{}'", min, example, value);
      },
      fmt::format("INT>={}", min));
}

void CommonOptions::add(CLI::App& app) {
  app.add_option("--threads", threads, "CPU threads for ATen/OpenBLAS (1 is fastest on a busy machine)")
      ->check(whole_number_at_least(1, "--threads 2"));
  app.add_flag("--quiet,-q", quiet, "no progress display");
  app.add_option("--device", device, "cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}));
  app.add_option("--dtype", dtype, "float32 or float64")->check(CLI::IsMember({"float32", "float64"}));
  app.add_option("--dist-timeout", dist_timeout,
                 "data-parallel runs: seconds to wait for every rank to join before giving up")
      ->capture_default_str()
      ->check(whole_number_at_least(1, "--dist-timeout 300"));
}

void CommonOptions::apply() const {
  set_threads(threads);
  set_join_timeout(std::chrono::seconds(dist_timeout));
  if (device == "cuda" && !torch::cuda::is_available())
    throw NotSupported("--device cuda: no CUDA device is available to this build (use --device cpu)");
}

torch::Device CommonOptions::torch_device() const { return device == "cuda" ? torch::kCUDA : torch::kCPU; }
torch::Dtype CommonOptions::torch_dtype() const { return dtype == "float64" ? torch::kFloat64 : torch::kFloat32; }

void TrainFlags::add(CLI::App& app) {
  app.add_option("--model", model, "model spec: mlp:H1,H2,..., cnn:lenet, resnet:DEPTH, transformer:LAYERS, torchscript:PATH (see `credence describe --models`)")
      ->capture_default_str();
  app.add_option("--likelihood", likelihood,
                 "gaussian (learned noise), gaussian?sigma=S, heteroscedastic, categorical, bernoulli");
  app.add_option("--init", init,
                 "start from these weights: a credence posterior file or a torch.save(module.state_dict()) file");
  app.add_option("--freeze", freeze,
                 "hold these parameters fixed: names or dotted prefixes, comma-separated (e.g. layer0)");
  app.add_option("--adapters", adapters,
                 "low-rank adapters on a frozen backbone (--init): lora:rank=4,alpha=8,targets=all,head=train "
                 "(see `credence describe --adapters`)");
  app.add_option("--epochs", train.epochs, "training epochs (0 with --init: its weights as they are are the MAP)")
      ->capture_default_str()
      ->check(whole_number_at_least(0, "--epochs 20"));
  app.add_option("--batch-size", train.batch_size, "minibatch size")
      ->capture_default_str()
      ->check(whole_number_at_least(1, "--batch-size 128"));
  app.add_option("--lr", train.lr, "step size (default: the method's own, 1e-3 for most, 0.1 for ivon)")
      ->check(CLI::Validator(
          [](std::string& v) -> std::string {
            try {
              if (parse_double(v, "--lr") > 0) return "";
            } catch (const InvalidArgument&) {
            }
            return fmt::format("must be a number > 0 (e.g. 1e-3), got '{}'", v);
          },
          "NUMBER>0"));
  app.add_option("--prior,--prior-precision", train.prior,
                 "prior over the weights: auto (precision 5e-4 * N, i.e. weight decay 5e-4), gaussian:PRECISION, "
                 "gaussian:P1,P2,... (one per layer), or a file from credence meta-fit (see `credence describe "
                 "--priors`)")
      ->capture_default_str();
  app.add_option("--seed", train.seed, "random seed")
      ->capture_default_str()
      ->check(whole_number_at_least(0, "--seed 0"));
  app.add_flag("--tune", train.tune,
               "choose the step size, weight decay and the method's own key options on the validation part "
               "(holdout=val:F in --data) by its NLL; the chosen values are in the table, the JSON and the file");
  app.add_option("--early-stop", train.patience,
                 "stop training after this many epochs without a better validation NLL and keep the best epoch "
                 "(needs holdout=val:F in --data; --epochs is then the most it trains)")
      ->check(whole_number_at_least(1, "--early-stop 5"));
  app.parse_complete_callback([this] { check(); });  // before the command runs
}

void TrainFlags::check() const {
  if (train.epochs == 0 && init.empty())
    throw InvalidArgument("--epochs 0 keeps the starting weights as they are, which only makes sense for weights "
                          "trained elsewhere: add --init FILE, or train for at least one epoch");
}

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
  for (size_t i = 0; i < out.size(); ++i)
    for (size_t j = 0; j < i; ++j)
      if (out[i] == out[j])
        throw InvalidArgument(fmt::format("--methods lists '{}' twice; list each method once (vary an option, "
                                          "e.g. ensemble:members=3,ensemble:members=5, to compare settings)",
                                          out[i]));
  return out;
}

// "a,b" as a list of choices, each one of `known`.
std::vector<std::string> split_choices(const std::string& text, const std::vector<std::string>& known,
                                       const std::string& option) {
  std::vector<std::string> out;
  for (const auto& piece : split(text, ',')) {
    auto t = trim(piece);
    if (std::find(known.begin(), known.end(), t) == known.end())
      throw InvalidArgument(fmt::format("{}: '{}' is not one of {}", option, t, fmt::join(known, ", ")));
    out.push_back(t);
  }
  if (out.empty()) throw InvalidArgument(fmt::format("{} is empty", option));
  return out;
}

std::pair<double, double> mean_and_se(const std::vector<double>& v) {
  const double n = static_cast<double>(v.size());
  double m = 0, sq = 0;
  for (double x : v) m += x / n;
  for (double x : v) sq += (x - m) * (x - m);
  return {m, v.size() > 1 ? std::sqrt(sq / (n - 1) / n) : 0.0};
}

std::string mean_se_text(const std::vector<double>& v) {
  const auto [m, se] = mean_and_se(v);
  return v.size() > 1 ? fmt::format("{:.3g} ({:.2g})", m, se) : fmt::format("{:.3g}", m);
}

void add_chain_diagnostics(const FittedModel& fitted, const Predictive& predictive, Row& row) {
  std::vector<std::string> warnings;
  for (const auto& [k, v] : convergence_metrics(fitted, predictive, &warnings)) row[k] = v;
  for (const auto& w : warnings) fmt::print(stderr, "warning: {}: {}\n", fitted.method, w);
}

void add_fit_facts(const FittedModel& fitted, Row& row) {
  // The parts of a fit's time and the hyper-parameters it tuned, where its method reports them.
  static const std::vector<std::string> facts = {"map_seconds",  "curvature_seconds", "factor_seconds",
                                                 "marglik_seconds", "val_seconds",     "prior_precision", "sigma"};
  if (fitted.info.contains("tuned")) row["tuned"] = fitted.info.at("tuned");
  if (fitted.info.contains("warnings")) row["warnings"] = fitted.info.at("warnings");
  auto report = fitted.info.find("report");
  if (report == fitted.info.end() || !report->is_object()) return;
  for (const auto& key : facts)
    if (report->contains(key) && report->at(key).is_number()) row[key] = report->at(key);
  if (report->contains("prior_choice")) row["prior_choice"] = report->at("prior_choice");
}

namespace {

// Table columns by what a reader looks for first: the main metrics, then sets and OOD scores in
// this order, then anything else alphabetically; costs close the row.
int column_priority(const std::string& key) {
  static const std::vector<std::string> order = {
      "method", "rank", "accuracy", "rmse", "nll", "ece", "coverage_90", "rhat", "crps", "brier", "mce", "aurc",
      "conformal_coverage", "conformal_set_size", "credible_coverage", "credible_set_size", "ood_auroc",
      "ood_aupr", "ood_fpr95", "ess"};
  auto it = std::find(order.begin(), order.end(), key);
  if (it != order.end()) return static_cast<int>(it - order.begin());
  if (key == "fit_seconds" || key == "predict_seconds") return 2000 + (key == "predict_seconds");
  if (key.size() > 8 && key.compare(key.size() - 8, 8, "_seconds") == 0) return 1999;  // a fit's parts
  return 1000;
}

}  // namespace

void print_table(const std::vector<Row>& rows, size_t max_width) {
  if (rows.empty()) return;
  std::vector<std::string> cols;
  for (const auto& row : rows)
    for (const auto& [k, v] : row)
      if (std::find(cols.begin(), cols.end(), k) == cols.end()) cols.push_back(k);
  std::stable_sort(cols.begin(), cols.end(), [](const std::string& a, const std::string& b) {
    int pa = column_priority(a), pb = column_priority(b);
    return pa != pb ? pa < pb : a < b;
  });
  constexpr size_t kMethodWidth = 32;  // longer method specs are cut here; --json has them whole
  auto cell = [](const nlohmann::json& v) {
    if (v.is_null()) return std::string("-");
    if (v.is_string() && v.get<std::string>().size() > kMethodWidth)
      return v.get<std::string>().substr(0, kMethodWidth - 3) + "...";
    if (v.is_number_float()) return fmt::format("{:.4f}", v.get<double>());
    if (v.is_string()) return v.get<std::string>();
    return v.dump();
  };
  auto width_of = [&](const std::string& c) {
    size_t w = c.size();
    for (const auto& row : rows)
      if (row.count(c)) w = std::max(w, cell(row.at(c)).size());
    return w + 2;
  };
  // Keep the method and the costs; fill the rest in priority order while the row fits.
  size_t used = 0;
  for (const auto& c : cols)
    if (c == "method" || column_priority(c) >= 2000) used += width_of(c);
  std::vector<std::string> shown, left_out;
  for (const auto& c : cols) {
    bool fixed = c == "method" || column_priority(c) >= 2000;
    if (fixed || used + width_of(c) <= max_width) {
      shown.push_back(c);
      if (!fixed) used += width_of(c);
    } else {
      left_out.push_back(c);
    }
  }
  for (size_t i = 0; i < shown.size(); ++i) fmt::print("{:<{}}", shown[i], width_of(shown[i]));
  fmt::print("\n");
  for (const auto& row : rows) {
    for (size_t i = 0; i < shown.size(); ++i) {
      std::string text = row.count(shown[i]) ? cell(row.at(shown[i])) : "-";
      if (i == 0)
        fmt::print("{:<{}}", text, width_of(shown[i]));
      else
        fmt::print("{:>{}}  ", text, width_of(shown[i]) - 2);
    }
    fmt::print("\n");
  }
  if (left_out.empty()) return;
  std::string note = "(not shown; in --json:";
  for (size_t i = 0; i < left_out.size(); ++i) {
    std::string word = " " + left_out[i] + (i + 1 < left_out.size() ? "," : ")");
    if (note.size() + word.size() > max_width) {
      fmt::print("{}\n", note);
      note = " ";
    }
    note += word;
  }
  fmt::print("{}\n", note);
}

void check_optional_output(const std::string& path, bool force, const std::string& option) {
  if (!path.empty()) check_output_path(path, force, option);
}

void write_json(const std::string& path, const nlohmann::json& j, bool overwrite) {
  if (!is_root_process()) return;  // one file per distributed run, from rank 0
  write_file_atomically(path, overwrite, [&](std::ostream& out) { out << j.dump(2) << "\n"; }, "--json");
}

}  // namespace credence::cli
