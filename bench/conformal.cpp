// Split conformal coverage on Fashion-MNIST: MAP of mlp:256,256 fitted on part of the training
// images, calibrated on a held-out part (never fitted on), evaluated on the 10,000 test images.
//   conformal [--n 10000] [--cal 2000] [--level 0.9] [--seeds 1] [--epochs 20] [--threads 2]
#include "credence/eval/conformal.h"

#include <fmt/format.h>

#include <CLI/CLI.hpp>

#include "bench_common.h"
#include "credence/credence.h"
#include "credence/eval/temperature.h"

using namespace credence;

namespace {
void print_sets(const std::string& name, const SetQuality& q) {
  fmt::print("  {:<34} coverage {:.4f}  mean set size {:.3f}\n", name, q.coverage, q.size);
}
}  // namespace

int main(int argc, char** argv) {
  credence::use_fast_blas_kernels(argv);
  CLI::App app{"split conformal coverage on Fashion-MNIST"};
  int64_t n = 10000, n_cal = 2000, epochs = 20;
  int seeds = 1, threads = 2;
  double level = 0.9;
  app.add_option("--n", n, "training images loaded (the calibration part comes out of them)");
  app.add_option("--cal", n_cal, "calibration images held out of fitting");
  app.add_option("--level", level, "nominal coverage");
  app.add_option("--seeds", seeds, "repetitions with different holdout and training seeds");
  app.add_option("--epochs", epochs, "MAP epochs");
  app.add_option("--threads", threads, "threads");
  CLI11_PARSE(app, argc, argv);
  bench::start(threads);
  auto test = load_data("fmnist:test").fit;
  double sum_aps = 0;
  for (int seed = 0; seed < seeds; ++seed) {
    auto start = std::chrono::steady_clock::now();
    FitRequest req;
    req.data = load_data(fmt::format("fmnist:train?n={}&holdout=cal:{}&holdout_seed={}", n, n_cal, seed));
    req.model = "mlp:256,256";
    req.train.epochs = epochs;
    req.train.seed = static_cast<uint64_t>(seed);
    req.train.quiet = true;
    auto fitted = fit(req);
    const Dataset& cal = *req.data.cal;
    auto p_cal = fitted.predict(cal), p_test = fitted.predict(test);
    fmt::print(
        "\nseed {}: MAP mlp:256,256 fitted on {} images, calibrated on {}, tested on {}; "
        "accuracy {:.4f}, {:.1f}s\n",
        seed, req.data.fit.size(), cal.size(), test.size(), accuracy(p_test, test.y),
        bench::seconds_since(start));
    fmt::print("  nominal level {:.2f}; a finite calibration set over-covers by at most 1/(n+1) = {:.4f}\n",
               level, 1.0 / static_cast<double>(cal.size() + 1));
    auto aps_q = evaluate_sets(conformal_sets(p_cal, cal.y, p_test, level, aps()), test.y);
    sum_aps += aps_q.coverage;
    print_sets("conformal APS", aps_q);
    print_sets("conformal RAPS (lambda .01, k_reg 2)",
               evaluate_sets(conformal_sets(p_cal, cal.y, p_test, level, raps(0.01, 2)), test.y));
    print_sets("credible (MAP probabilities)", evaluate_sets(credible_sets(p_test, level), test.y));
    auto t = fit_temperature(p_cal, cal.y);
    print_sets(fmt::format("credible (temperature {:.3f} on cal)", t.temperature),
               evaluate_sets(credible_sets(apply_temperature(p_test, t.temperature), level), test.y));
  }
  if (seeds > 1) fmt::print("\nmean APS coverage over {} seeds: {:.4f}\n", seeds, sum_aps / seeds);
  return 0;
}
