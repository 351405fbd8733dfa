// bound: a PAC-Bayes risk certificate for a posterior that carries its prior.
#include <ATen/ATen.h>
#include <fmt/format.h>

#include "common.h"
#include "credence/core/error.h"
#include "credence/posterior/certified.h"

namespace credence::cli {
namespace {

const CertifiedGaussianPosterior& certified(const FittedModel& f, const std::string& path) {
  auto* p = dynamic_cast<const CertifiedGaussianPosterior*>(f.posterior.get());
  if (!p)
    throw InvalidArgument(fmt::format(
        "'{}' holds a {} posterior (method '{}'); a certificate needs a Gaussian posterior that records its "
        "prior: fit one with --method pacbayes",
        path, f.posterior->kind(), f.method));
  return *p;
}

// The rows of `data` the prior never saw: all of them for a prior chosen without data; else the
// fit's own training rows minus the prior's, and nothing else (overlap could not be ruled out).
Dataset bound_rows(const FittedModel& f, const CertifiedGaussianPosterior& p, const std::string& spec,
                   const Dataset& data) {
  const std::string fit_spec = f.info.value("data", "");
  if (p.prior_rows().size(0) > 0 && spec != fit_spec)
    throw InvalidArgument(fmt::format(
        "the prior was learned on rows of '{}', so a bound on '{}' cannot rule out that the prior saw its "
        "examples; omit --data to bound on the rows of '{}' the prior never saw",
        fit_spec, spec, fit_spec));
  return p.unseen_rows(data, f.info.value("n_fit", int64_t{-1}));
}

}  // namespace

void add_bound(CLI::App& app) {
  auto* cmd = app.add_subcommand("bound", "PAC-Bayes risk certificate of a posterior fitted with pacbayes");
  struct Args {
    CommonOptions common;
    std::string posterior, data, test, json;
    CertifyOptions certify;
    bool force = false;
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("--posterior", args->posterior, "posterior file from `credence fit --method pacbayes`")->required();
  cmd->add_option("--data", args->data, "data to certify on (default: the fit's data, minus the prior's rows)");
  cmd->add_option("--test", args->test, "labelled data whose error is reported next to the bound");
  cmd->add_option("--delta", args->certify.delta, "confidence of the PAC-Bayes bound")->capture_default_str();
  cmd->add_option("--delta-mc", args->certify.delta_mc, "confidence of the sampled empirical risk")->capture_default_str();
  cmd->add_option("--networks", args->certify.networks,
                  "sampled networks, at least (rounded up to whole passes, one network per row)")
      ->capture_default_str();
  cmd->add_option("--pmin", args->certify.pmin, "bounded cross-entropy floor (default: the fit's)");
  cmd->add_option("--seed", args->certify.seed, "keys the sampled networks")->capture_default_str();
  cmd->add_option("--json", args->json, "write the certificate as JSON (certified error under `bound`)");
  cmd->add_flag("--force", args->force, "replace --json if it exists");
  args->common.add(*cmd);
  cmd->callback([args, cmd] {
    args->common.apply();
    check_optional_output(args->json, args->force, "--json");
    auto f = FittedModel::load(args->posterior, args->common.torch_device());
    const auto& p = certified(f, args->posterior);
    if (cmd->count("--pmin") == 0) args->certify.pmin = fitted_pmin(f.info);
    const std::string spec = args->data.empty() ? f.info.value("data", "") : args->data;
    auto all = load_data(spec, {f.model->dtype()}).fit;
    f.check_data(all);
    auto rows = bound_rows(f, p, spec, all);
    auto x = f.standardizer.inputs(rows.x.to(f.model->device(), f.model->dtype()));
    auto c = certify(p, *f.model, x, rows.y, args->certify);
    auto j = c.to_json();
    j["posterior"] = args->posterior;
    j["data"] = spec;
    fmt::print("certificate on {} rows of {} the prior never saw; KL {:.1f}; {} sampled networks\n", c.n, spec,
               c.kl, c.networks);
    fmt::print("with probability >= {:.3f}:\n", 1 - c.delta - c.delta_mc);
    fmt::print("  {:<14} {:>10} {:>14} {:>10}\n", "loss", "empirical", "sampling bound", "bound");
    fmt::print("  {:<14} {:>10.4f} {:>14.4f} {:>10.4f}\n", "0-1 error", c.error_estimate, c.error_empirical_bound,
               c.error_bound);
    fmt::print("  {:<14} {:>10.4f} {:>14.4f} {:>10.4f}\n", "cross-entropy", c.ce_estimate, c.ce_empirical_bound,
               c.ce_bound);
    if (!args->test.empty()) {
      auto test = load_data(args->test, {f.model->dtype()}).fit;
      f.check_data(test);
      auto tx = f.standardizer.inputs(test.x.to(f.model->device(), f.model->dtype()));
      auto risk = stochastic_risk(*f.model, p.mean(), p.variance().sqrt(), tx, test.y, 1, c.pmin,
                                  args->certify.seed + 1);
      at::NoGradGuard no_grad;
      double mean_error =
          (f.model->forward(tx, p.mean()).argmax(-1).cpu() != test.y).to(at::kDouble).mean().item<double>();
      j["test_error"] = risk.error;
      j["test_ce"] = risk.cross_entropy;
      j["test_error_mean_network"] = mean_error;
      j["test"] = args->test;
      fmt::print("test error on {} ({} rows): stochastic network {:.4f}, mean network {:.4f}\n", args->test,
                 test.size(), risk.error, mean_error);
    }
    if (!args->json.empty()) write_json(args->json, j, args->force);
  });
}

}  // namespace credence::cli
