#include "common.h"

#include <fmt/format.h>
#include <torch/cuda.h>

#include <fstream>
#include <iostream>

#include "credence/core/distributed.h"
#include "credence/core/error.h"
#include "credence/core/runtime.h"

namespace credence::cli {

void CommonOptions::add(CLI::App& app) {
  app.add_option("--threads", threads, "CPU threads for ATen/OpenBLAS (1 is fastest on a busy machine)")
      ->check(CLI::PositiveNumber);
  app.add_flag("--quiet,-q", quiet, "no progress display");
  app.add_option("--device", device, "cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}));
  app.add_option("--dtype", dtype, "float32 or float64")->check(CLI::IsMember({"float32", "float64"}));
}

void CommonOptions::apply() const {
  set_threads(threads);
  if (device == "cuda" && !torch::cuda::is_available())
    throw NotSupported("--device cuda: no CUDA device is available to this build (use --device cpu)");
}

torch::Device CommonOptions::torch_device() const { return device == "cuda" ? torch::kCUDA : torch::kCPU; }
torch::Dtype CommonOptions::torch_dtype() const { return dtype == "float64" ? torch::kFloat64 : torch::kFloat32; }

void TrainFlags::add(CLI::App& app) {
  app.add_option("--model", model, "model spec: mlp:H1,H2,...[?act=relu|tanh], cnn:lenet, torchscript:PATH")
      ->capture_default_str();
  app.add_option("--likelihood", likelihood,
                 "gaussian (learned noise), gaussian?sigma=S, heteroscedastic, categorical, bernoulli");
  app.add_option("--epochs", train.epochs, "training epochs")->capture_default_str();
  app.add_option("--batch-size", train.batch_size, "minibatch size")->capture_default_str();
  app.add_option("--lr", train.lr, "learning rate")->capture_default_str();
  app.add_option("--prior-precision", train.prior, "Gaussian prior precision: auto (5e-4 * N, i.e. weight decay 5e-4), one value, or one per layer")
      ->capture_default_str();
  app.add_option("--seed", train.seed, "random seed")->capture_default_str();
}

void add_chain_diagnostics(const FittedModel& fitted, const Predictive& predictive, Row& row) {
  std::vector<std::string> warnings;
  for (const auto& [k, v] : convergence_metrics(fitted, predictive, &warnings)) row[k] = v;
  for (const auto& w : warnings) fmt::print(stderr, "warning: {}: {}\n", fitted.method, w);
}

void print_table(const std::vector<Row>& rows) {
  if (rows.empty()) return;
  std::vector<std::string> cols = {"method"};
  for (const auto& row : rows)
    for (const auto& [k, v] : row)
      if (std::find(cols.begin(), cols.end(), k) == cols.end()) cols.push_back(k);
  auto cell = [](const nlohmann::json& v) {
    if (v.is_number_float()) return fmt::format("{:.4f}", v.get<double>());
    if (v.is_string()) return v.get<std::string>();
    return v.dump();
  };
  std::vector<size_t> width;
  for (const auto& c : cols) {
    size_t w = c.size();
    for (const auto& row : rows)
      if (row.count(c)) w = std::max(w, cell(row.at(c)).size());
    width.push_back(w);
  }
  for (size_t i = 0; i < cols.size(); ++i) fmt::print("{:<{}}  ", cols[i], width[i]);
  fmt::print("\n");
  for (const auto& row : rows) {
    for (size_t i = 0; i < cols.size(); ++i) {
      std::string text = row.count(cols[i]) ? cell(row.at(cols[i])) : "-";
      if (i == 0)
        fmt::print("{:<{}}  ", text, width[i]);
      else
        fmt::print("{:>{}}  ", text, width[i]);
    }
    fmt::print("\n");
  }
}

void refuse_existing(const std::string& path, bool force, const std::string& option) {
  if (!path.empty() && !force && std::ifstream(path).good())
    throw IoError(fmt::format("'{}' exists; choose another {} or pass --force to replace it", path, option));
}

void write_json(const std::string& path, const nlohmann::json& j, bool overwrite) {
  if (!is_root_process()) return;  // one file per distributed run, from rank 0
  refuse_existing(path, overwrite, "file");
  std::ofstream out(path);
  if (!out) throw IoError(fmt::format("cannot write '{}'", path));
  out << j.dump(2) << "\n";
}

}  // namespace credence::cli
