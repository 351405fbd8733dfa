// Meta-learned priors on sinusoid tasks (the environment of Rothfuss et al. 2021): per seed, a prior
// learned by meta-fit on meta-train tasks, then each meta-test task fitted on a few context points
// and judged on the rest, with the learned prior, with the isotropic prior, and from the learned
// mean without a prior (a meta-learned initialization, fine-tuned for a few steps).
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <tuple>
#include <map>

#include "bench_common.h"
#include "plot_data.h"
#include "credence/credence.h"
#include "credence/core/rng.h"
#include "credence/core/spec.h"
#include "credence/eval/calibration.h"
#include "credence/fit/meta.h"

using namespace credence;

namespace {

// Yacht hydrodynamics (UCI), one task per hull form (the first five columns): residuary resistance
// against the Froude number. Rows shuffled within each task so that its first rows are a random
// context; hulls split at random into meta-train and meta-test.
std::pair<TaskSet, TaskSet> yacht_tasks(int seed, int test_tasks) {
  std::ifstream in(std::string(CREDENCE_DATA_DIR) + "/uci/yacht/data.txt");
  std::map<std::vector<double>, std::vector<std::pair<double, double>>> hulls;
  std::vector<double> row(7);
  while (in >> row[0] >> row[1] >> row[2] >> row[3] >> row[4] >> row[5] >> row[6])
    hulls[std::vector<double>(row.begin(), row.begin() + 5)].push_back({row[5], row[6]});
  std::vector<Dataset> all;
  for (const auto& [hull, points] : hulls) {
    if (points.size() < 10) continue;  // an incomplete hull
    Dataset d;
    d.x = at::empty({static_cast<int64_t>(points.size()), 1}, at::kDouble);
    d.y = at::empty({static_cast<int64_t>(points.size())}, at::kDouble);
    for (size_t i = 0; i < points.size(); ++i) d.x[i][0] = points[i].first, d.y[i] = points[i].second;
    auto perm = keyed_permutation(d.size(), rng_key(seed, Stream::Shuffle, 1, all.size()));
    d.x = d.x.index_select(0, perm).to(at::kFloat), d.y = d.y.index_select(0, perm).to(at::kFloat);
    d.name = fmt::format("yacht hull {}", all.size());
    all.push_back(std::move(d));
  }
  if (all.empty()) throw DataError("yacht data not found under " CREDENCE_DATA_DIR "/uci/yacht");
  auto order = keyed_permutation(static_cast<int64_t>(all.size()), rng_key(seed, Stream::Shuffle, 2));
  TaskSet train, test;
  train.name = "yacht meta-train hulls", test.name = "yacht meta-test hulls";
  for (int64_t i = 0; i < order.size(0); ++i)
    (i < test_tasks ? test : train).tasks.push_back(all[order[i].item<int64_t>()]);
  return {train, test};
}

struct Score {
  double nll = 0, rmse = 0, qce = 0;
  int64_t n = 0, failed = 0;
  void add(const Predictive& p, const torch::Tensor& y) {
    nll += regression_nll(p, y), rmse += rmse_of(p, y), qce += quantile_calibration_error(p, y), ++n;
  }
  static double rmse_of(const Predictive& p, const torch::Tensor& y) { return credence::rmse(p, y); }
  Score mean() const { return {nll / n, rmse / n, qce / n, 1, failed}; }
};

}  // namespace

int main(int argc, char** argv) {
  use_fast_blas_kernels(argv);
  CLI::App app{"meta-learned prior vs isotropic prior vs meta-learned initialization on sinusoid tasks"};
  int seeds = 5, rounds = 60, tasks = 20, context = 5, targets = 50, epochs = 1000, init_steps = 50;
  std::string variance = "tensor", family = "sinusoid", model = "mlp:32,32", methods_text = "map;laplace:subset=all,hessian=full;vi", tasks_spec = "synthetic:sinusoid";
  app.add_option("--seeds", seeds)->capture_default_str();
  app.add_option("--family", family, "sinusoid, or yacht (UCI hulls as tasks; --tasks is then the meta-test hulls)")
      ->capture_default_str();
  app.add_option("--rounds", rounds, "meta-fit EM rounds")->capture_default_str();
  app.add_option("--variance", variance, "meta-fit's prior variances: tensor, shared or parameter")->capture_default_str();
  app.add_option("--tasks", tasks, "meta-train and meta-test tasks")->capture_default_str();
  app.add_option("--context", context, "points per meta-train task and context points per meta-test task")
      ->capture_default_str();
  app.add_option("--targets", targets, "test points per meta-test task")->capture_default_str();
  app.add_option("--epochs", epochs, "training steps of each fit (all context points in one batch)")->capture_default_str();
  app.add_option("--init-steps", init_steps, "fine-tuning steps from the meta-learned initialization")
      ->capture_default_str();
  app.add_option("--model", model)->capture_default_str();
  std::string plot_data;
  app.add_option("--plot-data", plot_data,
                 "write seed 0's first meta-test task: predictives on a grid to FILE.csv (x, then mean and sd per "
                 "row), its context points to FILE.context.csv and its test points to FILE.test.csv");
  app.add_option("--methods", methods_text, "methods, ';'-separated")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  bench::start(1);
  fmt::print("# meta_prior | {} | meta-fit: {} rounds, variance per {}\n", bench::now_string(), rounds, variance);
  if (family == "sinusoid")
    fmt::print("# {} meta-train tasks of {} points; {} meta-test tasks, {} context + {} test points; model {}\n",
               tasks, context, tasks, context, targets, model);
  else
    fmt::print("# yacht: {} meta-test hulls, {} context points each, the rest to test; model {}\n", tasks, context,
               model);
  std::vector<std::string> methods;
  for (const auto& m : credence::split(methods_text, ';')) methods.push_back(m);
  auto dir = std::filesystem::temp_directory_path() / fmt::format("credence_meta_prior_{}", ::getpid());
  std::filesystem::create_directories(dir);

  std::map<std::string, std::vector<Score>> per_seed;  // row -> one mean score per seed
  for (int seed = 0; seed < seeds; ++seed) {
    auto start = std::chrono::steady_clock::now();
    MetaFitRequest r;
    TaskSet test;
    if (family == "yacht") {
      std::tie(r.tasks, test) = yacht_tasks(seed, tasks);
    } else {
      r.tasks = load_tasks(fmt::format("{}?tasks={}&points={}&seed={}", tasks_spec, tasks, context, seed));
      test = load_tasks(fmt::format("{}?tasks={}&points={}&seed={}&part=test", tasks_spec, tasks, context + targets,
                                    seed));
    }
    r.model = model;
    r.rounds = rounds;
    r.variance = variance;
    r.seed = static_cast<uint64_t>(seed);
    auto learned = meta_fit(r);
    const double meta_seconds = bench::seconds_since(start);
    auto prior_path = (dir / fmt::format("prior{}.crd", seed)).string();
    save_prior_file(prior_path, learned.prior, true);
    PriorFile init = learned.prior;  // the learned mean and units, with (next to) no prior
    init.prior.precision = at::full_like(init.prior.precision, 1e-8);
    auto init_path = (dir / fmt::format("init{}.crd", seed)).string();
    save_prior_file(init_path, init, true);

    std::map<std::string, Score> scores;
    const bool plot = seed == 0 && !plot_data.empty();
    std::vector<torch::Tensor> columns;
    std::vector<std::string> names;
    Dataset grid;
    if (plot) {
      auto lo = std::get<0>(test.tasks.front().x.min(0)), hi = std::get<0>(test.tasks.front().x.max(0));
      grid.x = at::linspace(lo.item<double>(), hi.item<double>(), 201, at::kFloat).unsqueeze(1);
      grid.y = at::zeros({201}, at::kFloat);
      columns.push_back(grid.x.squeeze(1).to(at::kDouble));
    }
    for (const auto& task : test.tasks) {
      const bool plot_task = plot && &task == &test.tasks.front();
      auto [ctx, target] = split_context(task, context);
      auto run = [&](const std::string& row, const std::string& method, const std::string& prior, int steps) {
        FitRequest f;
        f.data.fit = ctx;
        f.model = model;
        f.method = method;
        f.train.epochs = steps;
        f.train.batch_size = context;
        f.train.prior = prior;
        f.train.quiet = true;
        f.train.seed = static_cast<uint64_t>(seed);
        try {
          auto fitted = fit(f);
          scores[row].add(fitted.predict(target), target.y);
          if (plot_task) {
            auto p = fitted.predict(grid);
            columns.push_back(p.mean.to(at::kDouble)), columns.push_back(p.var.sqrt().to(at::kDouble));
            names.push_back(row);
          }
        } catch (const NumericalError& e) {  // counted, and left out of the means
          ++scores[row].failed;
          fmt::print("# seed {} {}: {}\n", seed, row, e.what());
        }
      };
      for (const auto& m : methods) {
        run("isotropic " + m, m, "auto", epochs);
        run("learned " + m, m, prior_path, epochs);
      }
      run(fmt::format("meta-init map, {} steps", init_steps), "map", init_path, init_steps);
    }
    for (const auto& [row, s] : scores) per_seed[row].push_back(s.mean());
    if (plot) {
      bench::write_predictive_table(plot_data + ".csv", names, columns);
      auto [ctx, target] = split_context(test.tasks.front(), context);
      bench::write_points(plot_data + ".context.csv", ctx);
      bench::write_points(plot_data + ".test.csv", target);
    }
    fmt::print("# seed {}: meta-fit {:.1f}s, evidence {:.2f} -> best {:.2f} (round {}), noise {:.4f} (standardized)\n",
               seed, meta_seconds, learned.log_evidence.front(),
               *std::max_element(learned.log_evidence.begin(), learned.log_evidence.end()),
               learned.prior.info.at("best_round").get<int64_t>(), learned.sigma);
    std::fflush(stdout);
  }
  std::filesystem::remove_all(dir);

  auto stat = [](const std::vector<Score>& v, double Score::*field) {
    std::vector<double> x;
    for (const auto& s : v) x.push_back(s.*field);
    return fmt::format("{:.3f} ± {:.3f}", bench::mean(x), bench::stderr_of_mean(x));
  };
  fmt::print("\n| prior, method | test NLL | RMSE | quantile calibration error | fits refused |\n|---|---|---|---|---|\n");
  for (const auto& [row, v] : per_seed) {
    int64_t failed = 0;
    for (const auto& s : v) failed += s.failed;
    fmt::print("| {} | {} | {} | {} | {} |\n", row, stat(v, &Score::nll), stat(v, &Score::rmse), stat(v, &Score::qce),
               failed);
  }
  fmt::print("\n(mean ± standard error over {} seeds of each seed's mean over its {} meta-test tasks)\n", seeds, tasks);
  return 0;
}
