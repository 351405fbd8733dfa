// Batched ensemble training (M members as one stacked computation) against M sequential
// single-member trainings of the same networks, interleaved in one run.
//   ensemble_speed [--members 5] [--reps 3] [--threads 1]
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "bench_common.h"
#include "credence/credence.h"

using namespace credence;

namespace {
double time_fit(FitRequest req, const std::string& method) {
  req.method = method;
  auto start = std::chrono::steady_clock::now();
  fit(req);
  return bench::seconds_since(start);
}

void compare(const std::string& label, FitRequest req, int members, int reps) {
  std::vector<double> batched, sequential;
  for (int r = 0; r < reps; ++r) {
    double seq = 0;
    for (int m = 0; m < members; ++m) {
      req.train.seed = 1000 * r + m;
      seq += time_fit(req, "map");
    }
    req.train.seed = 1000 * r;
    double bat = time_fit(req, fmt::format("ensemble:members={}", members));
    sequential.push_back(seq);
    batched.push_back(bat);
  }
  double b = bench::median(batched), s = bench::median(sequential);
  fmt::print("{}: batched {} members {:.2f}s, {} sequential members {:.2f}s, ratio {:.3f} (median of {})\n", label,
             members, b, members, s, b / s, reps);
}
}  // namespace

int main(int argc, char** argv) {
  credence::use_fast_blas_kernels(argv);
  CLI::App app{"batched vs sequential ensemble training"};
  int members = 5, reps = 3, threads = 1;
  app.add_option("--members", members, "ensemble members");
  app.add_option("--reps", reps, "repetitions");
  app.add_option("--threads", threads, "threads");
  CLI11_PARSE(app, argc, argv);
  bench::start(threads);

  FitRequest uci;
  uci.data = load_data("uci:" CREDENCE_DATA_DIR "/uci/yacht?split=0&part=train");
  uci.model = "mlp:50";
  uci.train.epochs = 40;
  uci.train.batch_size = 32;
  uci.train.quiet = true;
  compare("yacht mlp:50, 40 epochs, batch 32", uci, members, reps);

  FitRequest img;
  img.data = load_data("fmnist:train?n=10000");
  img.model = "mlp:256,256";
  img.train.epochs = 1;
  img.train.quiet = true;
  compare("fmnist:train?n=10000 mlp:256,256, 1 epoch, batch 128", img, members, reps);
  return 0;
}
