// Where a NUTS gradient's time goes on a UCI set: the log density with the network's
// hand-written backward pass, the same through autograd, and the sampler's own work per
// leapfrog step (on a standard normal of the same dimension), measured side by side.
//   nuts_cost [--data uci:DIR?split=0&part=train] [--model mlp:50] [--calls 3000] [--reps 3]
#include <ATen/ATen.h>
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "bench_common.h"
#include "credence/credence.h"
#include "credence/methods/hmc.h"

using namespace credence;
using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) {
  credence::use_fast_blas_kernels(argv);
  CLI::App app{"cost of one NUTS gradient, by part"};
  std::string data = "uci:" CREDENCE_DATA_DIR "/uci/bostonHousing?split=0&part=train", model_spec = "mlp:50";
  int64_t calls = 3000, reps = 3;
  app.add_option("--data", data, "training data spec")->capture_default_str();
  app.add_option("--model", model_spec, "model spec")->capture_default_str();
  app.add_option("--calls", calls, "log-density calls per timing")->capture_default_str();
  app.add_option("--reps", reps, "alternated repetitions")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  try {
    credence::tune_allocator();
    credence::set_threads(1);
    fmt::print("{}\n{}\n", bench::machine_summary(), credence::runtime_summary());
    auto raw = load_data(data, {torch::kFloat64}).fit;
    Problem p;
    p.train = Standardizer::fit(raw).apply(raw);
    p.model = make_model(model_spec, p.train.input_shape(), 1, torch::kFloat64);
    p.likelihood = Likelihood::parse("gaussian", p.train);
    p.prior = GaussianPrior::isotropic(10.0, *p.model);
    auto theta = p.model->init_params(0).to(at::kDouble);
    auto subset = ParamSubset::parse("all", *p.model);
    const int64_t D = subset.size + 1;
    auto q = at::cat({theta, at::zeros({1}, at::kDouble)});
    auto grad = at::zeros({D}, at::kDouble);
    auto time_calls = [&](const LogDensity& f) {
      auto start = Clock::now();
      for (int64_t i = 0; i < calls; ++i) f(q, grad);
      return bench::seconds_since(start) / static_cast<double>(calls) * 1e6;
    };
    auto hand = posterior_log_density(p, p.likelihood, subset, theta, true, 1.0, 0.1, at::kDouble, true);
    auto autograd = posterior_log_density(p, p.likelihood, subset, theta, true, 1.0, 0.1, at::kDouble, false);
    auto hand32 = posterior_log_density(p, p.likelihood, subset, theta, true, 1.0, 0.1, at::kFloat, true);
    // The sampler alone: plain HMC with 255 leapfrog steps per draw on N(0, I) of dimension D.
    LogDensity normal = [](const torch::Tensor& x, torch::Tensor& g) {
      g.copy_(-x);
      return -0.5 * x.pow(2).sum().item<double>();
    };
    SamplerSettings s;
    s.warmup = 0;
    s.draws = std::max<int64_t>(1, calls / 255);
    s.steps = 255;
    s.adapt_mass = false;
    fmt::print("{} rows, {} parameters + log sigma; microseconds per call:\n", p.train.size(), subset.size);
    for (int64_t r = 0; r < reps; ++r) {
      const double a = time_calls(hand), b = time_calls(autograd), c = time_calls(hand32);
      auto start = Clock::now();
      run_chain(normal, at::zeros({D}, at::kDouble), s, 1);
      const double leapfrog = bench::seconds_since(start) / static_cast<double>(s.draws * 255) * 1e6;
      const double trivial = time_calls(normal);
      fmt::print("  hand backward {:7.1f}  autograd {:7.1f} (ratio {:.2f})  hand float32 {:7.1f}  "
                 "leapfrog on N(0, I) {:6.1f} (of which its log density {:5.1f})\n",
                 a, b, b / a, c, leapfrog, trivial);
    }
  } catch (const std::exception& e) {
    fmt::print(stderr, "nuts_cost: {}\n", e.what());
    return 1;
  }
  return 0;
}
