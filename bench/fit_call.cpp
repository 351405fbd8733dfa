// The C++ route of bench/python_overhead.py: MAP and last-layer Laplace on Fashion-MNIST through
// fit() with the data already in memory, timed around the two calls; prints the best of --reps.
//   fit_call [--n 10000] [--epochs 3] [--reps 3]
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <limits>

#include "bench_common.h"
#include "credence/credence.h"

using namespace credence;

int main(int argc, char** argv) {
  credence::use_fast_blas_kernels(argv);
  CLI::App app{"fit() of MAP and last-layer Laplace, data in memory"};
  int64_t n = 10000;
  int epochs = 3, reps = 3;
  app.add_option("--n", n, "Fashion-MNIST training images");
  app.add_option("--epochs", epochs, "training epochs");
  app.add_option("--reps", reps, "repetitions (the best is printed)");
  CLI11_PARSE(app, argc, argv);
  bench::start(1);
  FitRequest req;
  req.data = load_data(fmt::format("fmnist:train?n={}", n));
  req.model = "mlp:256,256";
  req.train.epochs = epochs;
  req.train.quiet = true;
  double best = std::numeric_limits<double>::infinity();
  for (int r = 0; r < reps; ++r) {
    auto start = std::chrono::steady_clock::now();
    req.method = "map";
    req.map = nullptr;
    auto map = fit(req);
    req.method = "laplace";
    req.map = &map;
    fit(req);
    best = std::min(best, bench::seconds_since(start));
  }
  fmt::print("C++ fit() calls {:.3f} s\n", best);
  return 0;
}
