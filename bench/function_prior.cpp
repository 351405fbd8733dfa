// Priors over functions against priors over weights, on the two problems they are for:
// the 1-D "in-between" gap (Foong et al. 2019: mean-field VI keeps its uncertainty flat between two
// clusters of data) and two moons with far-away points (out-of-distribution detection).
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <cmath>
#include <fstream>
#include <map>

#include "bench_common.h"
#include "plot_data.h"
#include "credence/core/rng.h"
#include "credence/core/spec.h"
#include "credence/credence.h"
#include "credence/eval/ood.h"

using namespace credence;

namespace {

constexpr double kPi = 3.14159265358979323846;

// y = sin(2 x) + x / 2 + noise on x in [-1.5, -0.7] U [0.7, 1.5].
Dataset gap_data(int64_t n, uint64_t key, bool clusters, double lo = -0.3, double hi = 0.3) {
  auto gen = cpu_generator(key);
  auto u = at::rand({n}, gen, at::kDouble);
  at::Tensor x;
  if (clusters) {
    auto side = (at::rand({n}, gen, at::kDouble) < 0.5).to(at::kDouble) * 2 - 1;
    x = side * (0.7 + 0.8 * u);
  } else {
    x = lo + (hi - lo) * u;
  }
  Dataset d;
  d.x = x.unsqueeze(1).to(at::kFloat);
  d.y = (at::sin(2 * x) + 0.5 * x + 0.1 * at::randn({n}, gen, at::kDouble)).to(at::kFloat);
  d.name = clusters ? "gap clusters" : "gap";
  return d;
}

// Points on a ring of radius 3-5 around the moons' centre.
Dataset far_points(int64_t n, uint64_t key) {
  auto gen = cpu_generator(key);
  auto angle = at::rand({n}, gen, at::kDouble) * (2 * kPi), radius = 3 + 2 * at::rand({n}, gen, at::kDouble);
  Dataset d;
  d.x = at::stack({0.5 + radius * at::cos(angle), 0.25 + radius * at::sin(angle)}, 1).to(at::kFloat);
  d.y = at::zeros({n}, at::kLong);
  d.task = Task::Classification;
  d.num_classes = 2;
  d.name = "far ring";
  return d;
}

double mean_std(const Predictive& p) { return p.var.sqrt().mean().item<double>(); }
// The spread of the component means (the model's own uncertainty, without the noise).
double mean_epistemic_std(const Predictive& p) {
  if (!p.sample_mean.defined() || p.sample_mean.size(0) < 2) return std::nan("");
  return p.sample_mean.var(0, /*unbiased=*/false).sqrt().mean().item<double>();
}

}  // namespace

int main(int argc, char** argv) {
  use_fast_blas_kernels(argv);
  CLI::App app{"priors over functions vs priors over weights: the in-between gap and two-moons OOD"};
  int seeds = 5, epochs = 2000;
  std::string model = "mlp:50,50";
  std::string gap_methods = "vi;vi:prior=gp:rbf?lengthscale=0.5;laplace;ensemble";
  std::string moons_methods = "vi;vi:prior=gp:rbf?lengthscale=0.5&margin=2;laplace;ensemble";
  app.add_option("--seeds", seeds)->capture_default_str();
  app.add_option("--epochs", epochs)->capture_default_str();
  app.add_option("--model", model)->capture_default_str();
  app.add_option("--gap-methods", gap_methods, "';'-separated; ':prior=SPEC' at the end sets --prior")
      ->capture_default_str();
  app.add_option("--moons-methods", moons_methods)->capture_default_str();
  std::string plot_data;
  app.add_option("--plot-data", plot_data,
                 "write seed 0's gap predictives on a grid to FILE.csv (x, then mean and sd per method) and its "
                 "training points to FILE.train.csv");
  CLI11_PARSE(app, argc, argv);
  bench::start(1);
  fmt::print("# function_prior | {} | model {} | {} epochs | {} seeds\n", bench::now_string(), model, epochs, seeds);

  auto run = [&](const std::string& row, DataParts data, uint64_t seed) {
    FitRequest r;
    r.data = std::move(data);
    r.model = model;
    auto at = row.find(":prior=");
    r.method = at == std::string::npos ? row : row.substr(0, at);
    if (at != std::string::npos) r.train.prior = row.substr(at + 7);
    r.train.epochs = epochs;
    r.train.batch_size = 32;
    r.train.seed = seed;
    r.train.quiet = true;
    return fit(r);
  };
  std::map<std::string, std::vector<double>> ratio, epistemic, nll, auroc;
  for (int seed = 0; seed < seeds; ++seed) {
    const uint64_t s = static_cast<uint64_t>(seed);
    DataParts gap;
    gap.fit = gap_data(80, rng_key(s, Stream::Noise, 1), true);
    auto test = gap_data(400, rng_key(s, Stream::Noise, 2), true);
    auto between = gap_data(200, rng_key(s, Stream::Noise, 3), false);
    Dataset grid;
    grid.x = at::linspace(-2.5, 2.5, 201, at::kFloat).unsqueeze(1);
    grid.y = at::zeros({201}, at::kFloat);
    std::vector<torch::Tensor> columns = {grid.x.squeeze(1).to(at::kDouble)};
    for (const auto& row : split(gap_methods, ';')) {
      auto fitted = run(row, gap, s);
      if (seed == 0 && !plot_data.empty()) {
        auto p = fitted.predict(grid);
        columns.push_back(p.mean.to(at::kDouble));
        columns.push_back(p.var.sqrt().to(at::kDouble));
      }
      auto on_data = fitted.predict(test), in_gap = fitted.predict(between);
      ratio[row].push_back(mean_std(in_gap) / mean_std(on_data));
      epistemic[row].push_back(mean_epistemic_std(in_gap) / mean_epistemic_std(on_data));
      nll[row].push_back(regression_nll(on_data, test.y));
    }
    if (seed == 0 && !plot_data.empty()) {
      bench::write_predictive_table(plot_data + ".csv", split(gap_methods, ';'), columns);
      bench::write_points(plot_data + ".train.csv", gap.fit);
    }
    auto moons = load_data(fmt::format("synthetic:moons?n=200&seed={}", seed));
    auto moons_test = load_data(fmt::format("synthetic:moons?n=500&part=test&seed={}", seed)).fit;
    auto far = far_points(500, rng_key(s, Stream::Noise, 4));
    for (const auto& row : split(moons_methods, ';')) {
      auto fitted = run(row, moons, s);
      auroc[row].push_back(ood_metrics(fitted.predict(moons_test), fitted.predict(far)).at("auroc"));
    }
    fmt::print("# seed {} done\n", seed);
    std::fflush(stdout);
  }
  auto stat = [](const std::vector<double>& v) {
    return fmt::format("{:.3f} ± {:.3f}", bench::mean(v), bench::stderr_of_mean(v));
  };
  fmt::print("\nin-between gap (80 points in [-1.5, -0.7] U [0.7, 1.5]; gap [-0.3, 0.3])\n\n"
             "| method | predictive sd, gap / data | sd of the mean, gap / data | test NLL on the data |\n"
             "|---|---|---|---|\n");
  for (const auto& [row, v] : ratio)
    fmt::print("| {} | {} | {} | {} |\n", row, stat(v), stat(epistemic[row]), stat(nll[row]));
  fmt::print("\ntwo moons (200 points), OOD: 500 points on a ring of radius 3-5, score: predictive entropy\n\n"
             "| method | OOD AUROC |\n|---|---|\n");
  for (const auto& [row, v] : auroc) fmt::print("| {} | {} |\n", row, stat(v));
  fmt::print("\n(mean ± standard error over {} seeds)\n", seeds);
  return 0;
}
