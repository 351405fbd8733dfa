// map_throughput: MAP training throughput of credence's fit() next to a plain LibTorch loop that
// does the same work (same network, optimizer, weight decay, batch size, data in memory).
//
// The two are run interleaved in one process (plain, credence, credence, plain, plain, ...) so
// that machine noise hits both alike; the medians and their ratio are reported.
#include <ATen/ATen.h>
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <torch/nn/functional/loss.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/linear.h>
#include <torch/cuda.h>
#include <torch/optim/adam.h>
#include <torch/utils.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "bench_common.h"
#include "credence/core/error.h"
#include "credence/core/rng.h"
#include "credence/core/runtime.h"
#include "credence/eval/metrics.h"
#include "credence/fit/fit.h"

namespace cb = credence::bench;

namespace {

constexpr double kWeightDecay = 5e-4;  // credence's "auto" prior: precision 5e-4 * N, i.e. this / N

struct RunResult {
  double seconds = 0;        ///< wall time of the whole training call
  double loop_seconds = 0;   ///< credence: fit_seconds as reported by fit() (init + epochs)
  double last_batch_loss = 0;
  double train_nll = 0, train_acc = 0, objective = 0;  ///< on the full training set, after training
};

struct Config {
  int64_t epochs = 2, reps = 3, n = 10000, batch_size = 128;
  int threads = 1;
  bool warmup = true;
  double lr = 1e-3;
  std::string data = "fmnist:train";
  std::string model = "mlp:256,256";
  std::string device = "cpu";
};

// The plain LibTorch loop: nn::Sequential of Linear/ReLU, optim::Adam with weight decay, a random
// permutation per epoch and index_select into minibatches, cross-entropy loss.
RunResult run_plain(const at::Tensor& x, const at::Tensor& y, int64_t num_classes, const Config& cfg,
                    uint64_t seed) {
  torch::manual_seed(seed);
  const int64_t n = x.size(0), d = x.size(1);
  auto start = std::chrono::steady_clock::now();
  torch::nn::Sequential net(torch::nn::Linear(d, 256), torch::nn::ReLU(), torch::nn::Linear(256, 256),
                            torch::nn::ReLU(), torch::nn::Linear(256, num_classes));
  net->to(x.device());
  torch::optim::Adam opt(net->parameters(), torch::optim::AdamOptions(cfg.lr).weight_decay(kWeightDecay));
  auto gen = credence::cpu_generator(seed);
  double last = 0;
  for (int64_t epoch = 0; epoch < cfg.epochs; ++epoch) {
    auto perm = at::randperm(n, gen, at::kLong).to(x.device());
    for (int64_t s = 0; s < n; s += cfg.batch_size) {
      auto idx = perm.narrow(0, s, std::min(cfg.batch_size, n - s));
      auto bx = x.index_select(0, idx);
      auto by = y.index_select(0, idx);
      opt.zero_grad();
      auto loss = torch::nn::functional::cross_entropy(net->forward(bx), by);
      loss.backward();
      opt.step();
      last = loss.item<double>();
    }
  }
  RunResult r;
  r.seconds = cb::seconds_since(start);
  r.loop_seconds = r.seconds;
  r.last_batch_loss = last;
  torch::NoGradGuard no_grad;
  auto out = net->forward(x);
  r.train_nll = torch::nn::functional::cross_entropy(out, y).item<double>();
  r.train_acc = out.argmax(1).eq(y).to(at::kDouble).mean().item<double>();
  double sq = 0;
  for (const auto& p : net->parameters()) sq += p.pow(2).sum().item<double>();
  r.objective = r.train_nll + 0.5 * kWeightDecay * sq;
  return r;
}

RunResult run_credence(const credence::FitRequest& base, uint64_t seed) {
  credence::FitRequest req = base;
  req.train.seed = seed;
  auto start = std::chrono::steady_clock::now();
  auto fitted = credence::fit(req);
  RunResult r;
  r.seconds = cb::seconds_since(start);
  r.loop_seconds = fitted.info.value("fit_seconds", 0.0);
  const auto& train = req.data.fit;
  auto p = fitted.predict(train);
  r.train_nll = credence::classification_nll(p, train.y);
  r.train_acc = credence::accuracy(p, train.y);
  auto particles = fitted.posterior->sample(1, 0);
  r.objective = r.train_nll + 0.5 * kWeightDecay * particles.pow(2).sum().item<double>();
  r.last_batch_loss = NAN;  // fit() does not return it; the full-set numbers above compare
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  credence::use_fast_blas_kernels(argv);
  Config cfg;
  CLI::App app{"MAP training throughput: credence fit() vs a plain LibTorch loop"};
  app.add_option("--epochs", cfg.epochs, "epochs per timed run")->capture_default_str();
  app.add_option("--reps", cfg.reps, "timed runs of each (interleaved)")->capture_default_str();
  app.add_option("--threads", cfg.threads, "ATen/OpenBLAS threads")->capture_default_str();
  app.add_option("--n", cfg.n, "training examples (fmnist:train?n=N)")->capture_default_str();
  app.add_option("--batch-size", cfg.batch_size, "minibatch size")->capture_default_str();
  app.add_option("--device", cfg.device, "cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}))->capture_default_str();
  app.add_flag("!--no-warmup", cfg.warmup, "skip the untimed warm-up epoch of each");
  CLI11_PARSE(app, argc, argv);

  try {
    credence::tune_allocator();
    credence::set_threads(cfg.threads);
    if (cfg.epochs < 1 || cfg.reps < 1 || cfg.n < 1 || cfg.batch_size < 1)
      throw credence::InvalidArgument("--epochs, --reps, --n and --batch-size must be >= 1");

    fmt::print("machine: {}\n", cb::machine_summary());
    fmt::print("runtime: {}\n", credence::runtime_summary());
    const torch::Device device = cfg.device == "cuda" ? torch::kCUDA : torch::kCPU;
    if (device.is_cuda() && !torch::cuda::is_available())
      throw credence::NotSupported("--device cuda: no CUDA device is available to this build");
    fmt::print("device: {}\n", cfg.device);
    const std::string spec = fmt::format("{}?n={}", cfg.data, cfg.n);
    fmt::print("task: MAP, {} with {}, Adam lr {}, batch {}, weight decay {} (prior precision {} = 5e-4 * N), "
               "{} epochs x {} reps, interleaved{}\n",
               spec, cfg.model, cfg.lr, cfg.batch_size, kWeightDecay, kWeightDecay * cfg.n, cfg.epochs, cfg.reps,
               cfg.warmup ? ", after 1 untimed warm-up epoch of each" : "");

    credence::FitRequest req;
    req.data = credence::load_data(spec);
    req.model = cfg.model;
    req.method = "map";
    req.train.epochs = cfg.epochs;
    req.train.batch_size = cfg.batch_size;
    req.train.lr = cfg.lr;
    req.train.prior = "auto";
    req.train.quiet = true;
    req.device = device;
    const auto& train = req.data.fit;
    const int64_t n = train.size();
    // The plain loop gets the same examples, flattened once up front.
    at::Tensor x = train.x.reshape({n, -1}).contiguous().to(device);
    at::Tensor y = train.y.to(device);

    std::vector<double> plain_s, cred_s, cred_loop_s;
    RunResult plain_last, cred_last;
    const double examples = static_cast<double>(n) * static_cast<double>(cfg.epochs);
    // One untimed epoch of each first: the first run in a process pays for page faults and
    // OpenBLAS buffer setup (seen here: 1.54 s against ~1.1 s for later runs).
    if (cfg.warmup) {
      Config warm = cfg;
      warm.epochs = 1;
      run_plain(x, y, train.num_classes, warm, 1000);
      credence::FitRequest warm_req = req;
      warm_req.train.epochs = 1;
      run_credence(warm_req, 1000);
    }
    // ABBA order (plain first in even repetitions, credence first in odd ones), so that neither
    // always runs right after the other.
    for (int64_t r = 0; r < cfg.reps; ++r) {
      for (int k = 0; k < 2; ++k) {
        if ((k == 0) == (r % 2 == 0)) {
          auto p = run_plain(x, y, train.num_classes, cfg, static_cast<uint64_t>(r));
          plain_s.push_back(p.seconds);
          plain_last = p;
          fmt::print("rep {} plain:    {:7.3f} s  {:8.0f} ex/s\n", r, p.seconds, examples / p.seconds);
        } else {
          auto c = run_credence(req, static_cast<uint64_t>(r));
          cred_s.push_back(c.seconds);
          cred_loop_s.push_back(c.loop_seconds);
          cred_last = c;
          fmt::print("rep {} credence: {:7.3f} s  {:8.0f} ex/s  (fit loop {:.3f} s)\n", r, c.seconds,
                     examples / c.seconds, c.loop_seconds);
        }
        std::fflush(stdout);
      }
    }
    double mp = cb::median(plain_s), mc = cb::median(cred_s);
    fmt::print("plain    LibTorch: median {:8.0f} examples/s ({:.3f} s per {} epochs)\n", examples / mp, mp, cfg.epochs);
    fmt::print("credence fit():    median {:8.0f} examples/s ({:.3f} s per {} epochs; loop only {:.3f} s)\n",
               examples / mc, mc, cfg.epochs, cb::median(cred_loop_s));
    std::vector<double> ratios;
    for (size_t i = 0; i < cred_s.size(); ++i) ratios.push_back(cred_s[i] / plain_s[i]);
    double best_p = *std::min_element(plain_s.begin(), plain_s.end());
    double best_c = *std::min_element(cred_s.begin(), cred_s.end());
    fmt::print("overhead: credence/plain time = {:.3f} ({:+.1f}%) of medians; {:.3f} median of paired ratios; "
               "{:.3f} of best runs\n",
               mc / mp, 100.0 * (mc / mp - 1.0), cb::median(ratios), best_c / best_p);
    fmt::print("final training loss (last rep, full train set): plain CE {:.4f} acc {:.4f} objective {:.4f} | "
               "credence CE {:.4f} acc {:.4f} objective {:.4f}\n",
               plain_last.train_nll, plain_last.train_acc, plain_last.objective, cred_last.train_nll,
               cred_last.train_acc, cred_last.objective);
    fmt::print("(plain last minibatch CE {:.4f}; objective = CE + 0.5 * {} * |theta|^2)\n", plain_last.last_batch_loss,
               kWeightDecay);
  } catch (const std::exception& e) {
    fmt::print(stderr, "map_throughput: {}\n", e.what());
    return 1;
  }
  return 0;
}
