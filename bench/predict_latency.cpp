// One-example (and small-batch) latency of every method's predictive next to MAP's: the cost of
// embedding a posterior in a program that acts on each input as it comes.
//   predict_latency [--n 2000] [--epochs 2] [--reps 200] [--methods map,laplace,...] [--threads 1]
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "bench_common.h"
#include "credence/core/spec.h"
#include "credence/credence.h"

using namespace credence;

namespace {

struct Latency {
  double median = 0, map_median = 0, first = 0;
};

// Median microseconds of `reps` predictions of the first `batch` test rows, after a warm-up call
// (which draws a sampled posterior's weights once), and the first call's own time. Each timed
// run of kRun calls alternates with a run of MAP's, so the ratio compares calls made moments apart
// on a noisy machine, each run with its own weights in cache as a program calling one model has.
constexpr int kRun = 10;
Latency latency(const FittedModel& f, const FittedModel& map, const Dataset& test, int64_t batch, int reps) {
  auto rows = test.subset(at::arange(batch, at::kLong));
  PredictOptions options;
  Latency out;
  auto start = std::chrono::steady_clock::now();
  f.predict(rows, options);
  out.first = bench::seconds_since(start) * 1e6;
  map.predict(rows, options);
  std::vector<double> times, map_times;
  auto time = [&](const FittedModel& model, std::vector<double>& into) {
    for (int r = 0; r < kRun; ++r) {
      start = std::chrono::steady_clock::now();
      model.predict(rows, options);
      into.push_back(bench::seconds_since(start) * 1e6);
    }
  };
  for (int r = 0; r < reps; r += kRun) {
    time(f, times);
    time(map, map_times);
  }
  out.median = bench::median(times);
  out.map_median = bench::median(map_times);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  credence::use_fast_blas_kernels(argv);
  CLI::App app{"predictive latency per method at batch sizes 1, 8 and 64"};
  int64_t n = 2000;
  int epochs = 2, reps = 200, threads = 1;
  std::string methods =
      "map;laplace;laplace:subset=all,hessian=kron;ensemble:members=5;swag;vi;ivon;mcdropout;sgld:samples=10;pacbayes";
  std::string model = "mlp:256,256";
  std::vector<int64_t> batches = {1, 8, 64};
  app.add_option("--n", n, "Fashion-MNIST training images (latency does not depend on fit quality)");
  app.add_option("--epochs", epochs, "training epochs");
  app.add_option("--reps", reps, "timed predictions per method and batch size");
  app.add_option("--methods", methods, "methods, separated by ';'");
  app.add_option("--model", model, "model spec");
  app.add_option("--threads", threads, "threads");
  app.add_option("--batches", batches, "batch sizes (the first is compared to the first call)");
  CLI11_PARSE(app, argc, argv);
  bench::start(threads);

  FitRequest req;
  req.data = load_data(fmt::format("fmnist:train?n={}", n));
  req.model = model;
  req.train.epochs = epochs;
  req.train.quiet = true;
  auto test = load_data(fmt::format("fmnist:test?n={}", *std::max_element(batches.begin(), batches.end()))).fit;
  fmt::print("model {}, fitted on {} images ({} epochs); median of {} predictions after one warm-up call, in runs of ten alternating with MAP's (the ratio)\n\n", model,
             n, epochs, reps);
  std::string header = "| method |", rule = "|---|";
  for (auto b : batches) {
    header += fmt::format(" batch {} (us) | vs MAP |", b);
    rule += "---|---|";
  }
  fmt::print("{} first call, batch {} (us) |\n{}---|\n", header, batches.front(), rule);
  req.method = "map";
  const auto map_fit = fit(req);
  for (const auto& method : split(methods, ';')) {
    req.method = method;
    auto f = method == "map" ? map_fit : fit(req);
    std::vector<std::string> cells;
    double first = 0;
    for (size_t b = 0; b < batches.size(); ++b) {
      auto t = latency(f, map_fit, test, batches[b], reps);
      if (b == 0) first = t.first;
      cells.push_back(fmt::format("{:.0f}", t.median));
      cells.push_back(fmt::format("{:.1f}", t.median / t.map_median));
    }
    fmt::print("| {} | {} | {:.0f} |\n", method, fmt::join(cells, " | "), first);
  }
  return 0;
}
