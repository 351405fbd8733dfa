#include "credence/methods/hmc.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <cmath>
#include <optional>

#include "credence/core/error.h"
#include "credence/core/progress.h"
#include "credence/core/runtime.h"
#include "credence/core/rng.h"
#include "credence/eval/diagnostics.h"
#include "credence/model/subset.h"
#include "credence/model/subspace.h"
#include "inner_fit.h"

namespace credence {

LogDensity posterior_log_density(const Problem& p, const Likelihood& likelihood, const ParamSubset& subset,
                                 const torch::Tensor& map_theta, bool sample_noise, double shape, double rate,
                                 at::ScalarType dtype, bool hand_backward) {
  const int64_t K = subset.size;
  const auto model = p.model;
  // The network in float32 costs ~20% less per gradient (bench/nuts_cost); the sampler's own
  // arithmetic (energies, the prior, the momenta) stays in float64 either way.
  auto x = p.train.x.to(dtype);
  auto y = p.train.task == Task::Regression ? p.train.y.to(dtype) : p.train.y;
  auto base = map_theta.to(model->device(), dtype);
  auto precision = subset.gather(p.prior.precision).to(at::kDouble);
  auto prior_mean = p.prior.has_mean() ? subset.gather(p.prior.mean).to(at::kDouble) : torch::Tensor();
  // The last layer alone is a linear model of fixed features: compute them once.
  torch::Tensor features;
  if (subset.last_layer) {
    at::NoGradGuard no_grad;
    features = model->require<LastLayerAccess>("subset=last_layer").features(x, base);
  }
  // With every parameter sampled, q holds theta itself: no copy into the MAP point. The prior's
  // gradient is added directly, outside autograd. Together ~18% less per gradient (mlp:50, boston).
  const bool whole = K == model->layout().size;
  // Fully connected models run forward and backward by hand in buffers reused across calls, and
  // the likelihood's gradient is written out: ~3x less per gradient on mlp:50, where
  // autograd's allocations and per-operation work are most of the cost.
  const HandBackward* hand = hand_backward && !features.defined() ? model->find<HandBackward>() : nullptr;
  struct Buffers {
    ForwardTrace trace;
    torch::Tensor d_out, d_theta;
  };
  auto buffers = std::make_shared<Buffers>();  // the sampler calls from one thread
  return [=](const torch::Tensor& q, torch::Tensor& grad) {
    auto qv = q.detach().to(base.device(), dtype);
    auto values = qv.narrow(0, 0, K);
    const double log_sigma = sample_noise ? q[K].item<double>() : std::log(likelihood.sigma);
    double u = 0.0;
    if (hand) {
      at::NoGradGuard no_grad;
      auto theta = whole ? values : subset.scatter(base, values);
      auto out = hand->forward_reusing(x, theta, buffers->trace);
      double d_log_sigma = 0.0;
      u = likelihood.nll_and_grad(out, y, log_sigma, buffers->d_out, &d_log_sigma);
      if (sample_noise) grad[K] = -d_log_sigma;
      if (!buffers->d_theta.defined()) buffers->d_theta = at::empty_like(theta);
      hand->backward(buffers->trace, theta, buffers->d_out, buffers->d_theta);
      grad.narrow(0, 0, K).copy_(whole ? buffers->d_theta : subset.gather(buffers->d_theta)).neg_();
    } else {
      qv.requires_grad_(true);
      values = qv.narrow(0, 0, K);
      torch::Tensor out;
      if (features.defined()) {
        const auto& l = subset.layers.front();
        out = at::linear(features, values.narrow(0, 0, l.out * l.in).view({l.out, l.in}),
                         values.narrow(0, l.out * l.in, l.out));
      } else {
        out = model->forward(x, whole ? values : subset.scatter(base, values));
      }
      auto loss = likelihood.nll(out, y, sample_noise ? qv[K] : torch::Tensor());
      loss.backward();
      u = loss.item<double>();
      grad.copy_(-qv.grad());
    }
    if (sample_noise) {  // Gamma(shape, rate) on the precision exp(-2 s), with the Jacobian of s = log sigma
      const double inv_var = std::exp(-2.0 * log_sigma);
      u += 2.0 * shape * log_sigma + rate * inv_var;
      grad[K] -= 2.0 * shape - 2.0 * rate * inv_var;
    }
    at::NoGradGuard no_grad;
    auto theta64 = q.narrow(0, 0, K).to(precision.device(), at::kDouble);
    if (prior_mean.defined()) theta64 = theta64 - prior_mean;
    auto prior_grad = precision * theta64;
    grad.narrow(0, 0, K).sub_(prior_grad.to(grad.device()));
    return -(u + 0.5 * (prior_grad * theta64).sum().item<double>());
  };
}

namespace {

constexpr int64_t kMaxAutoDense = 256;

// Full-batch posterior sampling. The state is q = [theta, log sigma] when the Gaussian noise is
// learned (then sampled under a Gamma(shape, rate) prior on the precision 1 / sigma^2), else theta.
enum class SamplerKind { Hmc, Nuts, Ess };

class HmcMethod : public Method {
 public:
  HmcMethod(const Options& o, SamplerKind kind) : options_(o), kind_(kind) {}
  const char* name() const { return kind_ == SamplerKind::Nuts ? "nuts" : kind_ == SamplerKind::Hmc ? "hmc" : "ess"; }
  bool wants_batches() const override { return false; }
  bool splits_units(int world_size) const override { return true; }

  void init(const Problem& problem) override {
    problem_ = &problem;
    if (!problem.map) throw InvalidArgument("hmc/nuts start from a MAP fit; none was given");
    auto* map = dynamic_cast<const ParticlePosterior*>(problem.map->posterior.get());
    if (!map || map->particles().size(0) != 1)
      throw InvalidArgument("hmc/nuts start from a single MAP point; fit method 'map' first");
    likelihood_ = problem.map->likelihood;
    map_theta_ = map->particles()[0].to(at::kDouble);
    subset_ = ParamSubset::parse(options_.get_string("subset"), *problem.model);
    // Elliptical slice sampling moves Gaussian-prior coordinates only: the noise stays the MAP's.
    // In a subspace the weights off it stay at a point fitted longer than the MAP (the SWA mean),
    // whose training residuals understate the noise: there the noise stays the MAP's as well.
    sample_noise_ = kind_ != SamplerKind::Ess && likelihood_.kind == LikelihoodKind::Gaussian && likelihood_.learn_sigma;
    if (sample_noise_) {
      const std::string noise = options_.get_string("noise");
      const bool in_subspace = problem.model->find<Subspace>() != nullptr;
      sample_noise_ = noise == "sample" || (noise == "auto" && !in_subspace);
    }
  }

  std::shared_ptr<Posterior> finalize() override {
    const auto& p = *problem_;
    const int64_t K = subset_.size;
    const auto dtype = options_.get_string("precision") == "float32" ? at::kFloat : at::kDouble;
    const bool ess = kind_ == SamplerKind::Ess;
    auto log_density_fn = posterior_log_density(p, likelihood_, subset_, map_theta_, sample_noise_,
                                                ess ? 1.0 : options_.get_double("noise_shape"),
                                                ess ? 1.0 : options_.get_double("noise_rate"), dtype);
    // Elliptical slice sampling follows the ellipses of a Gaussian reference: a Laplace
    // approximation at the MAP over few coordinates, else the (diagonal) weight prior.
    std::optional<GaussianReference> reference;
    bool laplace = false;
    if (ess) {
      auto precision = subset_.gather(p.prior.precision).to(at::kCPU, at::kDouble);
      const std::string kind = options_.get_string("reference");
      laplace = kind == "laplace" || (kind == "auto" && K <= kMaxAutoDense);
      if (laplace) {
        check_memory(8.0 * 4.0 * static_cast<double>(K) * static_cast<double>(K),
                     fmt::format("ess reference=laplace over {} sampled coordinates", K),
                     "use reference=prior or a smaller subset");
        reference = laplace_reference(log_density_fn, subset_.gather(map_theta_.to(at::kCPU)).to(at::kDouble),
                                      precision.min().item<double>());
      } else {
        reference = GaussianReference{p.prior.has_mean() ? subset_.gather(p.prior.mean).to(at::kCPU, at::kDouble)
                                                         : at::zeros({K}, at::TensorOptions().dtype(at::kDouble)),
                                      precision.rsqrt()};
      }
    }

    SamplerSettings s;
    s.warmup = options_.get_int("warmup");
    s.draws = options_.get_int("draws");
    if (!ess) s.target_accept = options_.get_double("target_accept");
    const std::string metric = ess ? "diag" : options_.get_string("metric");
    s.dense_mass = metric == "dense" || (metric == "auto" && K + (sample_noise_ ? 1 : 0) <= kMaxAutoDense);
    if (s.dense_mass) {  // the metric, its factor and the adaptation window's draws, in float64
      const double d = static_cast<double>(K + (sample_noise_ ? 1 : 0));
      check_memory(8.0 * (3.0 * d * d + static_cast<double>(s.warmup) * d),
                   fmt::format("metric=dense over {} sampled coordinates", static_cast<int64_t>(d)),
                   "use metric=diag or subset=last_layer");
    }
    if (kind_ == SamplerKind::Nuts) s.max_depth = static_cast<int>(options_.get_int("max_depth"));
    if (kind_ == SamplerKind::Hmc) s.steps = options_.get_int("steps");
    const int64_t chains = options_.get_int("chains");
    const uint64_t seed = p.train_options.seed;
    // Chains are independent units of work, each depending on (seed, c) alone: in a run of several
    // processes each runs its share and the results are gathered.
    const auto [first, last] = owned_units(p, chains);
    Progress progress(name(), (last - first) * (s.warmup + s.draws), p.train_options.quiet);

    const int64_t thin = options_.get_int("thin");
    const int64_t kept_draws = (s.draws + thin - 1) / thin, D = K + (sample_noise_ ? 1 : 0);
    report_ = {{"init", options_.get_string("init")}, {"chains", chains}, {"warmup", s.warmup}, {"draws", s.draws},
               {"thin", thin}, {"subset", subset_.spec}, {"precision", options_.get_string("precision")},
               {"metric", ess ? "none" : s.dense_mass ? "dense" : "diag"}};
    if (ess) report_["reference"] = laplace ? "laplace" : "prior";
    auto starts = chain_starts(chains);
    auto draws = at::zeros({last - first, kept_draws, D}, at::kFloat);  // as compact as the sampler's
    auto log_density = at::zeros({last - first, s.draws}, at::kDouble);
    auto stats = at::zeros({last - first, 4}, at::kDouble);  // step size, accept, leapfrogs, divergences
    for (int64_t c = first; c < last; ++c) {
      auto q0 = sample_noise_ ? at::cat({starts[c], at::full({1}, std::log(likelihood_.sigma), at::kDouble)}) : starts[c];
      s.on_iteration = [&](int64_t it) {
        progress.update((c - first) * (s.warmup + s.draws) + it + 1, fmt::format("chain {}/{}", c + 1, chains));
      };
      const uint64_t key = rng_key(seed, Stream::Sample, 1, c);
      auto r = reference ? run_elliptical_chain(log_density_fn, *reference, q0.to(at::kCPU), s, key)
                         : run_chain(log_density_fn, q0.to(at::kCPU), s, key);
      draws[c - first].copy_(r.draws.slice(0, 0, s.draws, thin));
      log_density[c - first].copy_(r.log_density);
      stats[c - first].copy_(at::tensor({r.step_size, r.mean_accept, r.mean_leapfrogs, static_cast<double>(r.divergences)},
                                        at::kDouble));
    }
    draws = gather_units(p, draws, first, chains);
    log_density = gather_units(p, log_density, first, chains);
    stats = gather_units(p, stats, first, chains);
    int64_t divergences = 0;
    std::vector<torch::Tensor> thetas;
    for (int64_t c = 0; c < chains; ++c) {
      thetas.push_back(subset_.scatter(map_theta_.to(at::kFloat),
                                       draws[c].narrow(1, 0, K).contiguous().to(map_theta_.device()))
                           .to(p.model->dtype()));
      report_["step_size"].push_back(stats[c][0].item<double>());
      report_["accept"].push_back(stats[c][1].item<double>());
      report_["leapfrogs"].push_back(stats[c][2].item<double>());
      report_["divergences"].push_back(stats[c][3].item<int64_t>());
      divergences += stats[c][3].item<int64_t>();
      log_density_.push_back(log_density[c]);
    }
    progress.finish();
    if (chains >= 2 && s.draws >= 4) {
      auto d = summarize(at::stack(log_density_));
      report_["rhat_log_density"] = d.rhat_max;
      report_["ess_bulk_log_density"] = d.ess_bulk_min;
      report_["ess_tail_log_density"] = d.ess_tail_min;
      for (const auto& w : d.warnings()) fmt::print(stderr, "warning: {} log density: {}\n", name(), w);
    }
    if (divergences > 0)
      fmt::print(stderr, "warning: {} divergent transitions after warm-up; raise target_accept (now {})\n",
                 divergences, s.target_accept);
    auto posterior = std::make_shared<ParticlePosterior>(at::cat(thetas).to(p.model->device()));
    posterior->set_chains(chains);
    if (sample_noise_)
      posterior->set_log_sigma(draws.select(2, K).reshape({-1}).to(p.model->device(), p.model->dtype()));
    return posterior;
  }

  Likelihood fitted_likelihood() const override { return likelihood_; }

  // Subset values [K] (float64, CPU) where each chain starts: the MAP point, fresh
  // initializations, or draws from a Laplace approximation around the MAP (a cheap posterior
  // approximation as the warm start).
  std::vector<torch::Tensor> chain_starts(int64_t chains) const {
    const auto& p = *problem_;
    const uint64_t seed = p.train_options.seed;
    const std::string init = options_.get_string("init");
    std::vector<torch::Tensor> starts;
    torch::Tensor draws;
    if (init == "laplace") {
      auto [info, laplace_options] = resolve_method("laplace:subset=" + subset_.spec);
      auto laplace = info->make(laplace_options);
      laplace->init(p);
      draws = laplace->finalize()->sample(chains, rng_key(seed, Stream::Init, 3));
    } else if (init == "vi") {  // mean-field VI from the MAP fit, with the fit's recipe
      const std::string subset = subset_.spec == "all" ? "" : ",subset=" + subset_.spec;
      auto [info, vi_options] = resolve_method("vi:init=map,elbo_samples=0" + subset);
      auto vi = info->make(vi_options);
      train_inner(*vi, p, p.train_options.epochs, 2, "vi start");
      draws = vi->finalize()->sample(chains, rng_key(seed, Stream::Init, 3));
    }
    for (int64_t c = 0; c < chains; ++c) {
      torch::Tensor theta = init == "map"      ? map_theta_
                            : draws.defined() ? draws[c]
                                              : p.model->init_params(rng_key(seed, Stream::Init, 2, c));
      starts.push_back(subset_.gather(theta.to(at::kDouble)).to(at::kCPU));
    }
    return starts;
  }
  nlohmann::json report() const override { return report_; }

 private:
  Options options_;
  SamplerKind kind_;
  const Problem* problem_ = nullptr;
  Likelihood likelihood_;
  torch::Tensor map_theta_;
  ParamSubset subset_;
  bool sample_noise_ = false;
  nlohmann::json report_;
  std::vector<torch::Tensor> log_density_;
};

std::vector<Field> sampler_fields() {
  return {{"chains", FieldType::Int, "4", "independent chains", {}},
          {"warmup", FieldType::Int, "500", "warm-up iterations per chain (step size and mass adaptation)", {}},
          {"draws", FieldType::Int, "500", "draws kept per chain", {}},
          {"target_accept", FieldType::Double, "0.8", "target mean acceptance statistic in (0, 1)", {}},
          {"init", FieldType::Choice, "map",
           "chain starts: map (the MAP fit), laplace or vi (draws from a Laplace or mean-field VI approximation "
           "around it; VI trains for --epochs) or random",
           {"map", "laplace", "vi", "random"}},
          {"subset", FieldType::String, "all", "parameters sampled: all, last_layer, names:PATTERN (others stay at the MAP), or a subspace: pca:K (SWA mean and top-K directions of the SGD trajectory), random:K", {}},
          {"thin", FieldType::Int, "1", "keep every k-th draw", {}},
          {"metric", FieldType::Choice, "auto",
           "mass matrix adapted in warm-up: diag, dense, or auto (dense up to 256 sampled coordinates)",
           {"auto", "diag", "dense"}},
          {"precision", FieldType::Choice, "float64",
           "arithmetic of the network's forward and backward passes: float64, or float32 (cheaper)",
           {"float64", "float32"}},
          {"noise", FieldType::Choice, "auto",
           "Gaussian noise: sample (with the weights, under the Gamma prior below), map (kept at the MAP's), or "
           "auto (map in a subspace, pca:K or random:K; sample otherwise)",
           {"auto", "sample", "map"}},
          {"noise_shape", FieldType::Double, "1", "Gamma prior on the noise precision: shape", {}},
          {"noise_rate", FieldType::Double, "0.1", "Gamma prior on the noise precision: rate", {}}};
}

void validate_sampler(const std::string& name, const Options& o) {
  auto positive = [&](const char* key) {
    if (o.get_int(key) < 1) throw InvalidArgument(fmt::format("{}: {} must be >= 1, got {}", name, key, o.get_int(key)));
  };
  positive("chains");
  positive("draws");
  positive("thin");
  if (o.get_int("warmup") < 0) throw InvalidArgument(fmt::format("{}: warmup must be >= 0", name));
  const double t = o.get_double("target_accept");
  if (!(t > 0 && t < 1)) throw InvalidArgument(fmt::format("{}: target_accept must be in (0, 1), got {}", name, t));
  if (!(o.get_double("noise_shape") > 0 && o.get_double("noise_rate") > 0))
    throw InvalidArgument(fmt::format("{}: noise_shape and noise_rate must be > 0", name));
}

}  // namespace

MethodInfo nuts_method_info() {
  MethodInfo info;
  info.name = "nuts";
  info.summary = "No-U-Turn sampler on the full-batch posterior (adapted step size and mass matrix), post-hoc";
  info.fields = sampler_fields();
  info.fields.push_back({"max_depth", FieldType::Int, "8", "tree depth limit (2^depth - 1 leapfrog steps)", {}});
  info.post_hoc = true;
  info.make = [](const Options& o) { return std::make_unique<HmcMethod>(o, SamplerKind::Nuts); };
  info.validate = [](const Options& o) {
    validate_sampler("nuts", o);
    if (o.get_int("max_depth") < 1 || o.get_int("max_depth") > 14)
      throw InvalidArgument(fmt::format("nuts: max_depth must be in [1, 14], got {}", o.get_int("max_depth")));
  };
  return info;
}

MethodInfo hmc_method_info() {
  MethodInfo info;
  info.name = "hmc";
  info.summary = "Hamiltonian Monte Carlo with a fixed number of leapfrog steps on the full-batch posterior";
  info.fields = sampler_fields();
  info.fields.push_back({"steps", FieldType::Int, "32", "leapfrog steps per draw", {}});
  info.post_hoc = true;
  info.make = [](const Options& o) { return std::make_unique<HmcMethod>(o, SamplerKind::Hmc); };
  info.validate = [](const Options& o) {
    validate_sampler("hmc", o);
    if (o.get_int("steps") < 1) throw InvalidArgument(fmt::format("hmc: steps must be >= 1"));
  };
  return info;
}

MethodInfo ess_method_info() {
  MethodInfo info;
  info.name = "ess";
  info.summary = "Elliptical slice sampling on the full-batch posterior (no step size to tune; the noise stays the "
                 "MAP's): for few coordinates, e.g. a subspace (subset=pca:K), post-hoc";
  for (const auto& f : sampler_fields())
    if (f.name != "target_accept" && f.name != "metric" && f.name != "noise" && f.name != "noise_shape" && f.name != "noise_rate")
      info.fields.push_back(f);
  info.fields.push_back({"reference", FieldType::Choice, "auto",
                         "the Gaussian whose ellipses the chains follow: laplace (the posterior's curvature at the MAP, "
                         "by finite differences of its gradient, 2K gradients; the likelihood is reweighted to match), "
                         "prior (the weight prior: as published, slow when the data pin the weights far inside it) "
                         "or auto (laplace up to 256 sampled coordinates)",
                         {"auto", "laplace", "prior"}});
  info.post_hoc = true;
  info.make = [](const Options& o) { return std::make_unique<HmcMethod>(o, SamplerKind::Ess); };
  info.validate = [](const Options& o) {
    for (const char* key : {"chains", "draws", "thin"})
      if (o.get_int(key) < 1) throw InvalidArgument(fmt::format("ess: {} must be >= 1, got {}", key, o.get_int(key)));
    if (o.get_int("warmup") < 0) throw InvalidArgument("ess: warmup must be >= 0");
  };
  return info;
}

}  // namespace credence
