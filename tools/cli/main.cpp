// The `credence` command: fit, predict, evaluate, compare, describe.
#include <c10/util/Exception.h>
#include <fmt/format.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <string>

#include "common.h"
#include "credence/core/distributed.h"
#include "credence/core/error.h"
#include "credence/core/runtime.h"

namespace {

// Library text that reaches the top, put in credence's words: what happened and what to do.
std::string user_message(const std::string& raw) {
  if (raw.find("can't allocate") != std::string::npos || raw.find("bad_alloc") != std::string::npos ||
      raw.find("out of memory") != std::string::npos) {
    std::string size;
    if (auto at = raw.find("allocate "); at != std::string::npos) {
      double bytes = std::strtod(raw.c_str() + at + 9, nullptr);
      if (bytes > 0) size = fmt::format(" (a request for {:.1f} GB)", bytes / 1e9);
    }
    return fmt::format("out of memory{}: use a smaller --batch-size or model, or a structured option "
                       "(hessian=kron or diag, subset=last_layer, fewer members or draws)",
                       size);
  }
  if (raw.find("Connection reset by peer") != std::string::npos ||
      raw.find("Connection closed by peer") != std::string::npos || raw.find("Broken pipe") != std::string::npos)
    return "another process of this data-parallel run stopped (its connection closed); its own error message "
           "says why. Fix that and start the run again";
  return "";
}

int report(const std::string& raw) {
  if (auto message = user_message(raw); !message.empty()) {
    fmt::print(stderr, "credence: error: {}\n", message);
    return 1;
  }
  fmt::print(stderr, "credence: internal error: {}\n", raw);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  credence::use_fast_blas_kernels(argv);
  credence::tune_allocator();
  credence::flush_denormals();
  // A peer of a data-parallel run that dies closes its sockets; writing to one must be an error
  // we can report, not a SIGPIPE that ends this process without a word.
  std::signal(SIGPIPE, SIG_IGN);
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
  credence::cli::add_optimize(app);
  credence::cli::add_active(app);
  credence::cli::add_meta_fit(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const credence::Error& e) {
    fmt::print(stderr, "credence: error: {}\n", e.what());
    return 1;
  } catch (const c10::Error& e) {
    return report(e.what_without_backtrace());
  } catch (const std::bad_alloc&) {
    return report("bad_alloc");
  } catch (const std::exception& e) {
    return report(e.what());
  }
  return 0;
}
