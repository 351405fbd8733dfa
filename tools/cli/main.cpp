// The `credence` command: fit, predict, evaluate, compare, describe.
#include <c10/util/Exception.h>
#include <fmt/format.h>

#include <cstdio>

#include "common.h"
#include "credence/core/distributed.h"
#include "credence/core/error.h"
#include "credence/core/runtime.h"

int main(int argc, char** argv) {
  credence::use_fast_blas_kernels(argv);
  credence::tune_allocator();
  // In a distributed run rank 0 reports; the other ranks keep only their errors (stderr).
  if (!credence::is_root_process()) std::freopen("/dev/null", "w", stdout);
  CLI::App app{"credence: Bayesian deep learning with calibrated uncertainty"};
  app.require_subcommand(1);
  credence::cli::add_fit(app);
  credence::cli::add_predict(app);
  credence::cli::add_evaluate(app);
  credence::cli::add_compare(app);
  credence::cli::add_describe(app);
  credence::cli::add_decide(app);
  credence::cli::add_bound(app);
  credence::cli::add_launch(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const credence::Error& e) {
    fmt::print(stderr, "credence: error: {}\n", e.what());
    return 1;
  } catch (const c10::Error& e) {
    fmt::print(stderr, "credence: internal error: {}\n", e.what_without_backtrace());
    return 2;
  } catch (const std::exception& e) {
    fmt::print(stderr, "credence: internal error: {}\n", e.what());
    return 2;
  }
  return 0;
}
