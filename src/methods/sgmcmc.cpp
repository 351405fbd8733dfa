#include "credence/methods/sgmcmc.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "credence/core/distributed.h"
#include "credence/core/error.h"
#include "credence/core/rng.h"
#include "bucketed_reduction.h"

namespace credence {

std::vector<int64_t> sgmcmc_collect_steps(int64_t total, double burnin, int64_t samples, int64_t thin) {
  const int64_t first = static_cast<int64_t>(std::floor(burnin * static_cast<double>(total) + 1e-9));
  const int64_t after = total - first;
  std::vector<int64_t> steps;
  if (thin > 0) {
    if (thin > after)
      throw InvalidArgument(
          fmt::format("thin={} exceeds the {} steps after burn-in; lower thin or burnin, or raise --epochs",
                      thin, after));
    for (int64_t k = total - (after / thin) * thin + thin - 1; k < total; k += thin) steps.push_back(k);
    return steps;
  }
  if (samples > after)
    throw InvalidArgument(fmt::format(
        "samples={} exceeds the {} steps after burn-in; lower samples or burnin, or raise --epochs", samples,
        after));
  for (int64_t j = 1; j <= samples; ++j) steps.push_back(first - 1 + (j * after + samples - 1) / samples);
  return steps;
}

double cyclical_position(int64_t step, int64_t total, int64_t cycles) {
  // Cycle m = floor(step * cycles / total) spans steps [ceil(m total / cycles), ceil((m + 1) total /
  // cycles)).
  const int64_t m = step * cycles / total;
  const int64_t start = (m * total + cycles - 1) / cycles, end = ((m + 1) * total + cycles - 1) / cycles;
  return static_cast<double>(step - start) / static_cast<double>(end - start);
}

double cyclical_lr(double lr, int64_t step, int64_t total, int64_t cycles) {
  return 0.5 * lr * (std::cos(M_PI * cyclical_position(step, total, cycles)) + 1.0);
}

std::vector<int64_t> cyclical_collect_steps(int64_t total, int64_t cycles, double exploration,
                                            int64_t per_cycle) {
  if (cycles > total)
    throw InvalidArgument(fmt::format(
        "cycles={} exceeds the {} steps of the run; lower cycles or raise --epochs", cycles, total));
  std::vector<int64_t> steps;
  int64_t k = 0;
  for (int64_t m = 0; m < cycles; ++m) {
    // Cycle m ends where cycle m + 1 starts (see cyclical_position); its position only grows.
    const int64_t end = ((m + 1) * total + cycles - 1) / cycles;
    while (k < end && cyclical_position(k, total, cycles) < exploration) ++k;
    const int64_t length = end - k;
    if (length < per_cycle)
      throw InvalidArgument(fmt::format(
          "cycle {} has {} sampling steps, fewer than samples_per_cycle={}; raise --epochs, or lower cycles, "
          "exploration or samples_per_cycle",
          m + 1, length, per_cycle));
    for (int64_t j = 1; j <= per_cycle; ++j)
      steps.push_back(k - 1 + (j * length + per_cycle - 1) / per_cycle);
    k = end;
  }
  return steps;
}

namespace {

// Rate of the running mean of squared residuals that sets a learned Gaussian noise: a plain mean
// over the first 1 / kSigmaRate steps, then an exponential average with this memory.
constexpr double kSigmaRate = 0.01;

class SgmcmcMethod : public Method {
 public:
  SgmcmcMethod(std::string name, const Options& o) : name_(std::move(name)), options_(o) {
    auto get = [&](const char* key, double fallback) {
      return o.values().count(key) ? o.get_double(key) : fallback;
    };
    temperature_ = o.get_double("temperature");
    momentum_ = get("momentum", 0.0);
    preconditioned_ = name_ == "psgld";
    beta_ = get("beta", 0.0);
    eps_ = get("eps", 0.0);
    cyclical_ = name_ == "csgmcmc";
    exploration_ = get("exploration", 0.0);
    cycles_ = cyclical_ ? o.get_int("cycles") : 1;
  }

  bool data_parallel() const override { return true; }

  void init(const Problem& problem) override {
    problem_ = &problem;
    const auto& train = problem.train_options;
    n_ = problem.train.size();
    const int64_t bs = std::min(train.batch_size, n_);
    total_ = train.epochs * ((n_ + bs - 1) / bs);
    lr_ = train.lr;
    seed_ = train.seed;
    if (total_ == 0)
      throw InvalidArgument(fmt::format("{}: --epochs 0 runs no steps, so nothing is sampled", name_));
    try {
      collect_ = cyclical_ ? cyclical_collect_steps(total_, cycles_, exploration_,
                                                    options_.get_int("samples_per_cycle"))
                           : sgmcmc_collect_steps(total_, options_.get_double("burnin"),
                                                  options_.get_int("samples"), options_.get_int("thin"));
    } catch (const InvalidArgument& e) {
      throw InvalidArgument(fmt::format("{}: {}", name_, e.what()));
    }
    const int64_t chains = options_.get_int("chains");
    auto theta = (options_.get_string("init") == "map"
                      ? map_params(problem, name_).unsqueeze(0).repeat({chains, 1})
                      : member_init_params(*problem.model, seed_, chains))
                     .requires_grad_(true);
    state_["theta"] = theta;
    if (momentum_ > 0) state_["velocity"] = at::zeros_like(theta);
    const auto& lik = problem.likelihood;
    if (lik.kind == LikelihoodKind::Gaussian && lik.learn_sigma) {
      const double sigma = problem.map ? problem.map->likelihood.sigma : lik.sigma;
      state_["log_sigma"] = at::full({}, std::log(sigma), theta.options());
    }
    state_["samples"] = draws_buffer(chains, static_cast<int64_t>(collect_.size()), theta.size(1));
    // Sampling p(theta | D)^(1/T) near a mode, E[g^2] = T diag(H) / N^2 with H the Hessian of
    // U, at least the prior's precision: below that floor V is an artifact (at a mode a
    // full-batch gradient is 0), and the preconditioner would take steps as large as 1 / eps.
    if (preconditioned_)
      square_floor_ = problem.prior.precision.to(theta.options()) *
                      (temperature_ / (static_cast<double>(n_) * static_cast<double>(n_)));
  }

  StepInfo step(const Batch& batch) override {
    const auto& p = *problem_;
    auto& theta = state_["theta"];
    const int64_t chains = theta.size(0);
    // One chain takes the plain forward path (no batched matmuls).
    auto weights = chains == 1 ? theta.select(0, 0) : theta;
    auto out = reduction_.forward(p, batch, weights);
    if (chains == 1) out = out.unsqueeze(0);
    auto log_sigma = state_.count("log_sigma") ? state_["log_sigma"] : torch::Tensor();
    // g = grad U / N with U = N * (mean batch NLL) + prior: the per-example gradient.
    auto nll = p.likelihood.nll_stacked(out, batch.y, log_sigma).sum() / batch.x.size(0);
    nll.backward();
    auto& grad = theta.mutable_grad();
    if (!grad.defined()) grad = at::zeros_like(theta);
    const bool overlapped = reduction_.active(p, batch);
    if (overlapped) {  // the prior's gradient is alike on every rank: added after the sum
      auto sums = chains == 1 ? grad.select(0, 0) : grad;
      reduction_.finish(p, batch, sums);
    }
    const double prior = p.prior.add_grad(theta, grad, 1.0 / static_cast<double>(n_));
    if (!overlapped) reduce_gradients(p, batch, {grad});
    at::NoGradGuard no_grad;
    if (log_sigma.defined()) update_sigma(out, batch);
    double lr = lr_;
    bool noisy = true;
    if (cyclical_) {
      lr = cyclical_lr(lr_, batch.step, total_, cycles_);
      noisy = cyclical_position(batch.step, total_, cycles_) >= exploration_;
    }
    move(theta, grad, lr, noisy, batch.step);
    grad.zero_();
    collect(theta, batch.step);
    return {(nll.item<double>() + prior) / static_cast<double>(chains)};
  }

  std::shared_ptr<Posterior> finalize() override {
    const auto& samples = state_["samples"];
    if (collected_ != samples.size(1))
      throw InvalidArgument(fmt::format("{}: collected {} of {} samples per chain: the run stopped early",
                                        name_, collected_, samples.size(1)));
    auto posterior = std::make_shared<ParticlePosterior>(samples.reshape({-1, samples.size(2)}));
    posterior->set_chains(samples.size(0));
    return posterior;
  }

  nlohmann::json report() const override { return reduction_.report(); }

  Likelihood fitted_likelihood() const override {
    Likelihood l = problem_->likelihood;
    auto it = state_.find("log_sigma");
    if (it != state_.end()) l.sigma = std::exp(it->second.item<double>());
    return l;
  }

 private:
  // Langevin dynamics on U with step eta = lr / N, written on the per-example scale:
  //   theta <- theta - eta * grad U + sqrt(2 eta T) xi = theta - lr * g + sqrt(2 lr T / N) xi,
  // which samples p(theta | D)^(1/T) as lr -> 0. With momentum m (friction alpha = 1 - m) it is
  // SGHMC, v <- m v - lr g + sqrt(2 alpha lr T / N) xi, theta <- theta + v (m = 0 is SGLD); the
  // gradient-noise estimate B-hat is taken as 0, as is usual. pSGLD scales both terms by the
  // RMSprop preconditioner G and drops the Gamma (dG/dtheta) term, as Li et al. do in practice.
  void move(torch::Tensor& theta, const torch::Tensor& g, double lr, bool noisy, int64_t step) {
    const double noise_var = 2.0 * lr * temperature_ / static_cast<double>(n_);
    // Keyed by step, so a data-parallel run draws the same noise.
    auto xi = noisy ? keyed_randn(theta.sizes(), rng_key(seed_, Stream::Noise, step), theta.options())
                    : torch::Tensor();
    if (preconditioned_) {
      // V is the plain mean of the squared gradients over the first 1 / (1 - beta) steps, then
      // their exponential average: from 0 the first steps would be 1 / eps sized, and a single
      // squared gradient leaves coordinates that happened to be small with huge steps.
      auto it = state_.find("square_avg");
      if (it == state_.end()) it = state_.emplace("square_avg", at::zeros_like(g)).first;
      const double rate = std::max(1.0 / static_cast<double>(++preconditioner_steps_), 1.0 - beta_);
      it->second.mul_(1.0 - rate).addcmul_(g, g, rate);
      auto precond = 1.0 / (at::maximum(it->second, square_floor_).sqrt() + eps_);
      theta.addcmul_(precond, g, -lr);
      if (noisy) theta.addcmul_(xi, (precond * noise_var).sqrt());
    } else if (momentum_ > 0) {
      auto& v = state_["velocity"];
      v.mul_(momentum_).add_(g, -lr);
      if (noisy) v.add_(xi, std::sqrt((1.0 - momentum_) * noise_var));
      theta.add_(v);
    } else {
      theta.add_(g, -lr);
      if (noisy) theta.add_(xi, std::sqrt(noise_var));
    }
  }

  // A learned Gaussian noise is a point estimate shared by the chains (as in ensemble): sigma^2
  // follows the running mean squared residual of the current samples, a stochastic EM step that
  // needs no learning rate and stays positive.
  void update_sigma(const torch::Tensor& out, const Batch& batch) {
    auto& log_sigma = state_["log_sigma"];
    const double r2 = reduce_mean(*problem_, batch, (out.select(-1, 0) - batch.y).pow(2).mean().item<double>());
    const double rate = std::max(1.0 / static_cast<double>(batch.step + 1), kSigmaRate);
    const double var = (1.0 - rate) * std::exp(2.0 * log_sigma.item<double>()) + rate * r2;
    log_sigma.fill_(0.5 * std::log(std::max(var, 1e-12)));
  }

  // [chains, S, P] float32 in memory, or with draws_file in a file mapped into memory: the
  // kernel then writes collected draws out and can drop them from memory, so a long run is
  // bounded by the disk. Other ranks of a multi-process run keep theirs in memory.
  torch::Tensor draws_buffer(int64_t chains, int64_t samples, int64_t params) const {
    const std::string path = options_.get_string("draws_file");
    const auto options = at::TensorOptions().dtype(at::kFloat);
    if (path.empty() || (problem_->comm && problem_->comm->rank() != 0))
      return at::empty({chains, samples, params}, options);
    if (std::filesystem::exists(path))
      throw InvalidArgument(fmt::format("{}: draws_file '{}' exists; remove it or name another file", name_, path));
    std::ofstream create(path, std::ios::binary);
    if (!create) throw IoError(fmt::format("{}: cannot create draws_file '{}'", name_, path));
    create.close();
    return at::from_file(path, true, chains * samples * params, options).view({chains, samples, params});
  }

  void collect(const torch::Tensor& theta, int64_t step) {
    auto it = std::lower_bound(collect_.begin(), collect_.end(), step);
    if (it == collect_.end() || *it != step) return;
    state_["samples"].select(1, it - collect_.begin()).copy_(theta.detach().to(at::kCPU, at::kFloat));
    ++collected_;
  }

  std::string name_;
  Options options_;
  const Problem* problem_ = nullptr;
  double temperature_ = 1, momentum_ = 0, beta_ = 0, eps_ = 0, exploration_ = 0, lr_ = 0;
  bool preconditioned_ = false, cyclical_ = false;
  int64_t n_ = 0, total_ = 0, cycles_ = 1, collected_ = 0, preconditioner_steps_ = 0;
  uint64_t seed_ = 0;
  std::vector<int64_t> collect_;
  torch::Tensor square_floor_;
  BucketedReduction reduction_;
};

// Samplers start at a MAP fit by default: a short run started at random is still far from the
// posterior's typical set.
std::vector<Field> chain_fields() {
  return {{"chains",
           FieldType::Int,
           "1",
           "chains run as one stacked computation (>= 2 for convergence checks)",
           {}},
          {"temperature",
           FieldType::Double,
           "1",
           "T > 0: samples target p(theta | D)^(1/T); T < 1 is a cold posterior",
           {}},
          {"init",
           FieldType::Choice,
           "map",
           "chain starts: map (every chain at a MAP fit of the same model, fitted first or shared by compare) or "
           "random (member 0 where MAP starts, the others from their own seeds: overdispersed starts for R-hat)",
           {"random", "map"}},
          {"draws_file",
           FieldType::String,
           "",
           "keep the draws in this new file, mapped into memory, instead of in memory (long runs)",
           {}}};
}

std::vector<Field> collection_fields() {
  return {{"burnin", FieldType::Double, "0.5", "fraction of the steps run before collecting, in [0, 1)", {}},
          {"samples",
           FieldType::Int,
           "20",
           "samples per chain, evenly spaced after burn-in, the last at the final step",
           {}},
          {"thin",
           FieldType::Int,
           "0",
           "if > 0: collect every thin-th step after burn-in instead (the last at the final step)",
           {}}};
}

void validate_sgmcmc(const std::string& name, const Options& o) {
  auto has = [&](const char* key) { return o.values().count(key) > 0; };
  auto fail = [&](const std::string& what) { throw InvalidArgument(fmt::format("{}: {}", name, what)); };
  if (o.get_int("chains") < 1) fail(fmt::format("chains must be >= 1, got {}", o.get_int("chains")));
  if (!(o.get_double("temperature") > 0))
    fail(fmt::format("temperature must be > 0, got {} (1 is the Bayes posterior)",
                     o.get_double("temperature")));
  if (has("burnin") && !(o.get_double("burnin") >= 0 && o.get_double("burnin") < 1))
    fail(fmt::format("burnin must be in [0, 1), got {}", o.get_double("burnin")));
  if (has("samples") && o.get_int("samples") < 1)
    fail(fmt::format("samples must be >= 1, got {}", o.get_int("samples")));
  if (has("thin") && o.get_int("thin") < 0) fail(fmt::format("thin must be >= 0, got {}", o.get_int("thin")));
  if (has("thin") && o.given("thin") && o.given("samples") && o.get_int("thin") > 0)
    fail("give samples or thin, not both (thin > 0 sets how many samples are collected)");
  if (has("momentum") && !(o.get_double("momentum") >= 0 && o.get_double("momentum") < 1))
    fail(fmt::format("momentum must be in [0, 1) (friction 1 - momentum > 0), got {}",
                     o.get_double("momentum")));
  if (has("beta") && !(o.get_double("beta") >= 0 && o.get_double("beta") < 1))
    fail(fmt::format("beta must be in [0, 1), got {}", o.get_double("beta")));
  if (has("eps") && !(o.get_double("eps") > 0))
    fail(fmt::format("eps must be > 0, got {}", o.get_double("eps")));
  if (has("cycles") && o.get_int("cycles") < 1)
    fail(fmt::format("cycles must be >= 1, got {}", o.get_int("cycles")));
  if (has("exploration") && !(o.get_double("exploration") >= 0 && o.get_double("exploration") < 1))
    fail(fmt::format("exploration must be in [0, 1) (a cycle needs a sampling phase), got {}",
                     o.get_double("exploration")));
  if (has("samples_per_cycle") && o.get_int("samples_per_cycle") < 1)
    fail(fmt::format("samples_per_cycle must be >= 1, got {}", o.get_int("samples_per_cycle")));
}

MethodInfo sgmcmc_info(const std::string& name, const std::string& summary, std::vector<Field> extra) {
  MethodInfo info;
  info.name = name;
  info.summary = summary;
  info.fields = chain_fields();
  info.fields.insert(info.fields.end(), extra.begin(), extra.end());
  info.make = [name](const Options& o) { return std::make_unique<SgmcmcMethod>(name, o); };
  info.validate = [name](const Options& o) { validate_sgmcmc(name, o); };
  info.uses_map = [](const Options& o) { return o.get_string("init") == "map"; };
  return info;
}

}  // namespace

MethodInfo sgld_method_info() {
  return sgmcmc_info(
      "sgld", "Stochastic gradient Langevin dynamics (step size: --lr); samples form a particle posterior",
      collection_fields());
}

MethodInfo sghmc_method_info() {
  auto fields = collection_fields();
  fields.push_back(
      {"momentum", FieldType::Double, "0.9", "momentum 1 - alpha (alpha: the friction), in [0, 1)", {}});
  return sgmcmc_info("sghmc", "Stochastic gradient Hamiltonian Monte Carlo with friction (step size: --lr)",
                     fields);
}

MethodInfo psgld_method_info() {
  auto fields = collection_fields();
  fields.push_back({"beta",
                    FieldType::Double,
                    "0.99",
                    "decay of the RMSprop average of squared gradients, in [0, 1)",
                    {}});
  fields.push_back({"eps",
                    FieldType::Double,
                    "1e-5",
                    "added to the root of that average (caps the preconditioner at 1/eps)",
                    {}});
  return sgmcmc_info("psgld", "RMSprop-preconditioned SGLD (step size: --lr)", fields);
}

MethodInfo csgmcmc_method_info() {
  return sgmcmc_info("csgmcmc",
                     "Cyclical SG-MCMC: cosine step-size cycles (peak --lr), each exploring then sampling",
                     {{"cycles", FieldType::Int, "4", "number of cosine step-size cycles", {}},
                      {"exploration",
                       FieldType::Double,
                       "0.8",
                       "fraction of each cycle run as optimization without noise, in [0, 1)",
                       {}},
                      {"samples_per_cycle",
                       FieldType::Int,
                       "3",
                       "samples per cycle, evenly spaced over its sampling phase",
                       {}},
                      {"momentum",
                       FieldType::Double,
                       "0",
                       "0: cSGLD; > 0: cSGHMC with this momentum (friction 1 - momentum)",
                       {}}});
}

}  // namespace credence
