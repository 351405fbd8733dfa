// Training time per epoch of the gradient-based methods against Adam's (MAP), interleaved in one
// run so that machine noise hits all alike.
//   epoch_time [--methods ivon,vi,pacbayes:prior=init] [--n 10000] [--reps 3] [--threads 1]
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "bench_common.h"
#include "credence/core/spec.h"
#include "credence/credence.h"

using namespace credence;

int main(int argc, char** argv) {
  credence::use_fast_blas_kernels(argv);
  CLI::App app{"training time per epoch against Adam"};
  std::string methods = "ivon;vi;pacbayes:prior=init", model = "mlp:256,256";
  int64_t n = 10000;
  int reps = 3, threads = 1;
  app.add_option("--methods", methods, "methods, ';'-separated");
  app.add_option("--model", model, "model spec");
  app.add_option("--n", n, "Fashion-MNIST training images");
  app.add_option("--reps", reps, "repetitions (median reported)");
  app.add_option("--threads", threads, "threads");
  CLI11_PARSE(app, argc, argv);
  bench::start(threads);

  FitRequest req;
  req.data = load_data(fmt::format("fmnist:train?n={}", n));
  req.model = model;
  req.train.epochs = 1;
  req.train.quiet = true;
  std::vector<std::string> names = {"map"};
  for (auto& m : split(methods, ';')) names.push_back(trim(m));
  std::map<std::string, std::vector<double>> seconds;
  for (int r = 0; r < reps + 1; ++r) {  // the first round warms up and is dropped
    for (const auto& name : names) {
      req.method = name;
      auto start = std::chrono::steady_clock::now();
      fit(req);
      if (r > 0) seconds[name].push_back(bench::seconds_since(start));
    }
  }
  const double adam = bench::median(seconds["map"]);
  fmt::print("{} on fmnist:train?n={}, batch {}, 1 epoch, median of {}:\n", model, n, req.train.batch_size, reps);
  for (const auto& name : names)
    fmt::print("  {:<28} {:7.2f}s per epoch  {:5.2f} x Adam\n", name, bench::median(seconds[name]),
               bench::median(seconds[name]) / adam);
  return 0;
}
