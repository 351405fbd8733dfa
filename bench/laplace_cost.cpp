// Laplace on Fashion-MNIST: quality of every subset x structure that fits, next to MAP, and the
// cost ratios of the Laplace issue, all measured in one run on one MAP fit.
//   laplace_cost [--model mlp:256,256] [--epochs 30] [--n 60000] [--threads 1] [--skip-all] [--skip-full]
//                [--only-kfac-mc] [--lr 0.001]
#include <ATen/ATen.h>
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "bench_common.h"
#include "laplace_floor.h"
#include "credence/credence.h"
#include "credence/model/subset.h"
#include "credence/posterior/laplace.h"

using namespace credence;
using bench::seconds_since;
using Clock = std::chrono::steady_clock;

namespace {
struct Row {
  std::string method;
  double fit = 0, predict = 0;
  std::map<std::string, double> metrics;
};

void print_row(const Row& r) {
  fmt::print("{:<44} acc {:.4f}  nll {:.4f}  ece {:.4f}  brier {:.4f}  fit {:7.2f}s  predict {:6.2f}s\n", r.method,
             r.metrics.at("accuracy"), r.metrics.at("nll"), r.metrics.at("ece"), r.metrics.at("brier"), r.fit,
             r.predict);
  std::fflush(stdout);
}

void print_floor(const Row& r, const bench::LaplaceFloor& f) {
  fmt::print("   floor: fit {:.2f}s (fit / floor {:.2f}), predict {:.2f}s (predict / floor {:.2f})\n", f.fit,
             r.fit / f.fit, f.predict, r.predict / f.predict);
}

// The dense layers' shapes of an `mlp`, for the floors; empty for other families.
std::vector<bench::DenseShape> dense_shapes(const Model& model) {
  if (model.spec().rfind("mlp", 0) != 0) return {};
  std::vector<bench::DenseShape> shapes;
  for (const auto& l : ParamSubset::parse("all", model).layers) shapes.push_back({l.in, l.out});
  return shapes;
}
}  // namespace

int main(int argc, char** argv) {
  credence::use_fast_blas_kernels(argv);
  CLI::App app{"Laplace quality and cost on Fashion-MNIST"};
  int64_t epochs = 30, n = 60000;
  int threads = 1;
  bool skip_all = false, skip_full = false, only_kfac_mc = false;
  std::string model = "mlp:256,256";
  double lr = 0;
  app.add_option("--epochs", epochs, "MAP epochs (long enough to be overconfident)");
  app.add_option("--n", n, "training images");
  app.add_option("--threads", threads, "threads");
  app.add_option("--model", model, "model spec (e.g. resnet:8, transformer:2)");
  app.add_option("--lr", lr, "MAP step size (0: the default)");
  app.add_flag("--only-kfac-mc", only_kfac_mc, "only all-weights KFAC with the MC Fisher (large networks)");
  app.add_flag("--skip-all", skip_all, "skip the all-weights variants");
  app.add_flag("--skip-full", skip_full, "skip the last-layer full covariance (minutes on 60,000 images)");
  CLI11_PARSE(app, argc, argv);
  bench::start(threads);

  FitRequest req;
  req.data = load_data(fmt::format("fmnist:train?n={}", n));
  req.model = model;
  req.train.epochs = epochs;
  req.train.lr = lr;
  req.train.quiet = true;
  auto test = load_data("fmnist:test").fit;
  fmt::print("task: MAP {} on {} images, {} epochs (default recipe otherwise); test on {}\n\n",
             model, req.data.fit.size(), epochs, test.size());

  auto start = Clock::now();
  auto map = fit(req);
  double map_fit = seconds_since(start);
  double epoch_seconds = map_fit / epochs;
  start = Clock::now();
  auto map_pred = map.predict(test);
  Row map_row{"map", map_fit, seconds_since(start), standard_metrics(map_pred, test.y)};
  print_row(map_row);

  // One forward pass over the training set, for the cost ratios.
  auto train = map.standardizer.apply(req.data.fit);
  auto theta = dynamic_cast<const ParticlePosterior&>(*map.posterior).particles();
  start = Clock::now();
  stacked_outputs(*map.model, train.x, theta, 1000);
  double forward_pass = seconds_since(start);
  std::map<std::string, bench::LaplaceFloor> floors;
  if (auto shapes = dense_shapes(*map.model); !shapes.empty())
    floors = bench::laplace_floors(shapes, train.size(), test.size(), forward_pass, map_row.predict);

  std::vector<std::string> variants = {"laplace:subset=last_layer,hessian=kron", "laplace:subset=last_layer,hessian=diag",
                                       "laplace:subset=last_layer,hessian=kron,link=bridge"};
  if (!skip_full) variants.push_back("laplace:subset=last_layer,hessian=full");
  if (only_kfac_mc)
    for (std::string v : {"laplace:subset=all,hessian=kron,curvature=mc", "laplace:subset=all,hessian=kron,curvature=mc,kfac=reduce"})
      variants.push_back(v);
  if (!skip_all && !only_kfac_mc)
    for (std::string v : {"laplace:subset=all,hessian=kron", "laplace:subset=all,hessian=diag",
                          "laplace:subset=all,hessian=kron,curvature=mc", "laplace:subset=subnetwork:1000,hessian=full"})
      variants.push_back(v);
  std::map<std::string, Row> rows;
  for (const auto& method : variants) {
    req.method = method;
    req.map = &map;
    start = Clock::now();
    auto f = fit(req);
    Row r{method, seconds_since(start), 0, {}};
    start = Clock::now();
    auto p = f.predict(test);
    r.predict = seconds_since(start);
    r.metrics = standard_metrics(p, test.y);
    print_row(r);
    const auto report = f.info.value("report", nlohmann::json::object());
    std::string parts;
    for (const std::string key : {"curvature_seconds", "factor_seconds", "marglik_seconds", "prior_precision"})
      if (report.contains(key)) parts += fmt::format("  {} {:.3g}", key, report.at(key).get<double>());
    if (!parts.empty()) fmt::print("   {}\n", parts);
    if (floors.count(method)) print_floor(r, floors.at(method));
    rows[method] = r;
    if (method == "laplace:subset=all,hessian=kron" && !only_kfac_mc) {
      // The full C x C function covariance of the all-weights KFAC GLM predictive on the test set.
      auto& post = dynamic_cast<LaplacePosterior&>(*f.posterior);
      auto x = map.standardizer.inputs(test.x);
      start = Clock::now();
      for (int64_t s = 0; s < x.size(0); s += 1000)
        post.function_variance(*map.model, x.narrow(0, s, std::min<int64_t>(1000, x.size(0) - s)), false);
      fmt::print("  all-weights KFAC GLM function covariance (10 x 10 per image) on {} test images: {:.2f}s\n",
                 x.size(0), seconds_since(start));
    }
  }
  auto ll = rows.at("laplace:subset=last_layer,hessian=kron");
  fmt::print("\nquality (last-layer KFAC, marglik, probit) vs MAP: accuracy {:+.2f} points, NLL ratio {:.3f}, "
             "ECE ratio {:.3f}\n",
             100 * (ll.metrics["accuracy"] - map_row.metrics["accuracy"]), ll.metrics["nll"] / map_row.metrics["nll"],
             ll.metrics["ece"] / map_row.metrics["ece"]);
  fmt::print("cost: one forward pass over the training set {:.2f}s, one training epoch {:.2f}s, MAP prediction {:.2f}s\n",
             forward_pass, epoch_seconds, map_row.predict);
  fmt::print("  last-layer KFAC fit / forward pass: {:.2f}\n", ll.fit / forward_pass);
  fmt::print("  last-layer KFAC GLM predictive / MAP prediction: {:.2f}\n", ll.predict / map_row.predict);
  if (!skip_all || only_kfac_mc) {
    auto mc = rows.at("laplace:subset=all,hessian=kron,curvature=mc");
    fmt::print("  all-weights KFAC fit, curvature=mc / one epoch: {:.2f}\n", mc.fit / epoch_seconds);
    fmt::print("  all-weights KFAC (mc) GLM predictive / MAP prediction: {:.2f}\n", mc.predict / map_row.predict);
    fmt::print("all-weights KFAC (mc, marglik, probit) vs MAP: accuracy {:+.2f} points, NLL ratio {:.3f}, ECE ratio "
               "{:.3f}\n",
               100 * (mc.metrics["accuracy"] - map_row.metrics["accuracy"]), mc.metrics["nll"] / map_row.metrics["nll"],
               mc.metrics["ece"] / map_row.metrics["ece"]);
    if (only_kfac_mc) {
      auto reduce = rows.at("laplace:subset=all,hessian=kron,curvature=mc,kfac=reduce");
      fmt::print("  all-weights KFAC-reduce fit, curvature=mc / one epoch: {:.2f}; vs MAP: accuracy {:+.2f} points, "
                 "NLL ratio {:.3f}, ECE ratio {:.3f}\n",
                 reduce.fit / epoch_seconds, 100 * (reduce.metrics["accuracy"] - map_row.metrics["accuracy"]),
                 reduce.metrics["nll"] / map_row.metrics["nll"], reduce.metrics["ece"] / map_row.metrics["ece"]);
    }
  }
  if (!skip_all && !only_kfac_mc) {
    const double exact = rows.at("laplace:subset=all,hessian=kron").fit;
    fmt::print("  all-weights KFAC fit, exact GGN: {:.2f}s, {:.2f} training epochs\n", exact, exact / epoch_seconds);
  }
  return 0;
}
