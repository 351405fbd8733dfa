// meta-fit: learn a prior over a model's weights from a family of related tasks.
#include <fmt/format.h>

#include <algorithm>

#include "common.h"
#include "credence/core/error.h"
#include "credence/core/files.h"
#include "credence/core/runtime.h"
#include "credence/fit/meta.h"

namespace credence::cli {

void add_meta_fit(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "meta-fit", "learn a Gaussian prior over the weights from related tasks (empirical Bayes on their evidence)");
  struct Args {
    MetaFitRequest request;
    std::string tasks, out;
    bool zero_mean = false, force = false, quiet = false;
    int threads = 1;
  };
  auto args = std::make_shared<Args>();
  auto& r = args->request;
  cmd->add_option("--tasks", args->tasks,
                  "task family: synthetic:sinusoid|cauchy?tasks=T&points=N, csv:PATH?target=Y&group=COLUMN or uci:DIR?group=K")
      ->required();
  cmd->add_option("--model", r.model, "model spec (as for fit)")->capture_default_str();
  cmd->add_option("--likelihood", r.likelihood, "likelihood (default: the tasks'; a Gaussian's noise is learned)");
  cmd->add_option("--out", args->out, "prior file to write (use it with --prior FILE)")->required();
  cmd->add_option("--hessian", r.hessian, "each task's Laplace structure: auto (exact low-rank for small tasks), diag, kron, full, lowrank:K")->capture_default_str();
  cmd->add_option("--variance", r.variance, "tensor (a precision per parameter tensor), shared (one) or parameter (one each)")
      ->capture_default_str();
  cmd->add_flag("--zero-mean", args->zero_mean, "keep the prior's mean at zero (learn precisions only)");
  cmd->add_option("--rounds", r.rounds, "EM rounds")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--steps", r.steps, "L-BFGS iterations of each task's MAP per round")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--seed", r.seed, "random seed")->capture_default_str();
  cmd->add_flag("--force", args->force, "replace --out if it exists");
  // Small models on small tasks: float64 on the CPU, so no --device or --dtype.
  cmd->add_option("--threads", args->threads, "CPU threads for ATen/OpenBLAS")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_flag("-q,--quiet", args->quiet, "no progress lines");
  cmd->callback([args] {
    set_threads(args->threads);
    check_output_path(args->out, args->force, "--out");
    auto& r = args->request;
    r.tasks = load_tasks(args->tasks);
    r.learn_mean = !args->zero_mean;
    r.quiet = args->quiet;
    auto result = meta_fit(r);
    save_prior_file(args->out, result.prior, args->force);
    if (!args->quiet)
      fmt::print("learned a prior for {} from {} tasks: summed log evidence {:.3f} -> {:.3f} (round {}){} -> {}\n",
                 r.model, r.tasks.tasks.size(), result.log_evidence.front(),
                 *std::max_element(result.log_evidence.begin(), result.log_evidence.end()),
                 result.prior.info.at("best_round").get<int64_t>(),
                 result.prior.info.contains("sigma") ? fmt::format(", noise {:.4g}", result.sigma) : "", args->out);
  });
}

}  // namespace credence::cli
