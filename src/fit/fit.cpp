#include "credence/fit/fit.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <optional>

#include "credence/core/distributed.h"
#include "credence/core/error.h"
#include "credence/core/progress.h"
#include "credence/core/files.h"
#include "credence/core/rng.h"
#include "credence/core/tensor_io.h"
#include "credence/model/adapters.h"
#include "credence/model/frozen.h"
#include "credence/model/subspace.h"
#include "credence/posterior/gp.h"
#include "credence/posterior/swag.h"
#include "credence/model/weights.h"
#include "credence/eval/metrics.h"
#include "members.h"
#include "tune.h"

namespace credence {
namespace {
// Below this a fit is noise: a regression's standardization alone needs two rows.
constexpr int64_t kMinExamples = 2;

// Training that diverged: at the method's own step size (no --lr given) the fit retries at a
// smaller one instead of failing.
class TrainingDiverged : public NumericalError {
 public:
  using NumericalError::NumericalError;
};

}  // namespace

double validation_nll(const FittedModel& fitted, const Dataset& data) {
  auto p = fitted.predict(data).to(torch::kCPU);
  return nll(p, data.y.to(torch::kCPU));
}

namespace {

// Minibatches drawn from a keyed permutation per epoch, gathered into buffers reused across
// steps (fresh memory is slow to touch on small machines). In a data-parallel run every rank draws
// the same permutation and takes its contiguous share of each minibatch's rows.
// `end_of_epoch(epoch)`, when given, runs after each epoch and returns true to stop training.
void run_epochs(Method& method, const Problem& problem, bool shard,
                const std::function<bool(int64_t)>& end_of_epoch = {}) {
  const auto& train = problem.train;
  const auto& opts = problem.train_options;
  const int64_t n = train.size();
  const int64_t bs = std::min(opts.batch_size, n);
  const int64_t steps_per_epoch = (n + bs - 1) / bs;
  const int64_t ranks = shard ? problem.comm->world_size() : 1;
  const int64_t rank = shard ? problem.comm->rank() : 0;
  if (const int64_t smallest = std::min(bs, n - (steps_per_epoch - 1) * bs); smallest < ranks)
    throw InvalidArgument(fmt::format(
        "a minibatch of {} rows cannot be shared by {} processes; choose --batch-size so that every minibatch "
        "(the last of an epoch has {} of {} rows) has at least {} rows",
        smallest, ranks, n - (steps_per_epoch - 1) * bs, n, ranks));
  Progress progress("fit", opts.epochs * steps_per_epoch, opts.quiet);
  auto bx_shape = train.x.sizes().vec();
  bx_shape[0] = bs;
  auto x_buf = at::empty(bx_shape, train.x.options());
  auto y_buf = at::empty({bs}, train.y.options());
  int64_t step = 0;
  double loss = 0.0;
  for (int64_t epoch = 0; epoch < opts.epochs; ++epoch) {
    auto perm = keyed_permutation(n, rng_key(opts.seed, Stream::Shuffle, epoch)).to(train.x.device());
    for (int64_t start = 0; start < n; start += bs) {
      int64_t m = std::min(bs, n - start);
      const int64_t lo = m * rank / ranks, hi = m * (rank + 1) / ranks;
      auto idx = perm.narrow(0, start + lo, hi - lo);
      auto bx = x_buf.narrow(0, 0, hi - lo), by = y_buf.narrow(0, 0, hi - lo);
      at::index_select_out(bx, train.x, 0, idx);
      at::index_select_out(by, train.y, 0, idx);
      Batch batch{bx, by, idx, epoch, step};
      if (shard) {
        batch.offset = lo;
        batch.global_rows = m;
      }
      auto info = method.step(batch);
      if (!std::isfinite(info.loss))
        throw TrainingDiverged(fmt::format("training diverged at epoch {} step {} (loss {}); lower --lr", epoch + 1,
                                         step, info.loss));
      loss = info.loss;
      ++step;
      progress.update(step, fmt::format("epoch {}/{} loss {:.4f}", epoch + 1, opts.epochs, loss));
    }
    if (end_of_epoch && end_of_epoch(epoch)) break;
  }
}

// Early stopping: the validation NLL of the method's posterior after every epoch; the state of the
// best epoch is kept and put back when training ends.
class EarlyStopping {
 public:
  EarlyStopping(Method& method, const FittedModel& shell, const Dataset& val, int64_t patience)
      : method_(method), shell_(shell), val_(val), patience_(patience) {}

  bool end_of_epoch(int64_t epoch) {
    FittedModel now = shell_;
    now.posterior = method_.finalize();
    now.likelihood = method_.fitted_likelihood();
    const double nll = validation_nll(now, val_);
    curve_.push_back(nll);
    if (std::isfinite(nll) && (best_epoch_ < 0 || nll < curve_[best_epoch_])) {
      best_epoch_ = epoch;
      best_.clear();
      for (const auto& [name, t] : method_.state()) best_[name] = t.detach().clone();
    }
    return epoch - best_epoch_ >= patience_;
  }

  /// Puts the best epoch's state back (in place, so whatever holds the tensors sees it).
  void restore() {
    if (best_epoch_ < 0 || best_epoch_ + 1 == static_cast<int64_t>(curve_.size())) return;
    at::NoGradGuard no_grad;
    for (auto& [name, t] : method_.state()) t.copy_(best_.at(name));
  }

  nlohmann::json report() const {
    return {{"patience", patience_}, {"best_epoch", best_epoch_ + 1}, {"epochs_run", curve_.size()},
            {"val_nll", curve_}};
  }

 private:
  Method& method_;
  const FittedModel& shell_;  // standardizer, model and method of the fit, for predictions
  const Dataset& val_;
  int64_t patience_;
  std::vector<double> curve_;
  int64_t best_epoch_ = -1;
  TensorMap best_;
};

void check_early_stopping(const FitRequest& request, const MethodInfo& info) {
  if (request.train.patience <= 0) return;
  if (!request.data.val)
    throw InvalidArgument(fmt::format("--early-stop {} needs a validation part to watch: add holdout=val:0.1 to "
                                      "--data",
                                      request.train.patience));
  if (!info.stops_early && !info.post_hoc) {
    std::vector<std::string> able;
    for (const auto& m : method_registry())
      if (m.stops_early || m.post_hoc) able.push_back(m.name);
    throw InvalidArgument(fmt::format(
        "{} cannot stop early: its epochs are a sampling or collection schedule, or it has none (--early-stop "
        "works with {}; post-hoc methods stop their MAP fit early)",
        info.name, fmt::join(able, ", ")));
  }
}

// NLL of predicting the training labels' frequencies (classification), or their mean with their
// variance or, under a fixed-noise likelihood, with that noise (`sigma` > 0, original units).
double constant_predictor_nll(const Dataset& d, double sigma) {
  if (d.task == Task::Classification) {
    auto counts = at::bincount(d.y.to(at::kCPU), {}, d.num_classes).to(at::kDouble);
    auto freq = counts / counts.sum();
    return -freq.index_select(0, d.y.to(at::kCPU)).log().mean().item<double>();
  }
  double var = d.y.to(at::kCPU, at::kDouble).var(/*unbiased=*/false).item<double>();
  if (sigma > 0) return 0.5 * std::log(2 * M_PI * sigma * sigma) + var / (2 * sigma * sigma);
  return 0.5 * std::log(2 * M_PI * std::max(var, 1e-300)) + 0.5;
}

// A trained model far worse on its own training data than the constant predictor has diverged even
// when every loss stayed finite (e.g. --lr 1e9 ends below chance): refuse it rather than save it.
void check_not_diverged(const FittedModel& fitted, const Dataset& raw, const TrainOptions& train) {
  constexpr int64_t kRows = 1000;
  constexpr double kMarginNats = 1.0;  // per example; NLL differences do not depend on units
  const int64_t n = raw.size();
  Dataset d = n <= kRows ? raw : raw.subset(at::linspace(0, n - 1, kRows, at::kDouble).round().to(at::kLong));
  auto p = fitted.predict(d, {}).to(torch::kCPU);
  auto y = d.y.to(torch::kCPU);
  const double nll = credence::nll(p, y);
  const auto& lik = fitted.likelihood;
  const bool fixed_noise = lik.kind == LikelihoodKind::Gaussian && !lik.learn_sigma;
  const double baseline =
      constant_predictor_nll(d, fixed_noise ? lik.sigma * fitted.standardizer.y_std : 0.0);
  if (std::isfinite(nll) && nll <= baseline + kMarginNats) return;
  throw TrainingDiverged(fmt::format(
      "training diverged: on its own training data the fitted model's NLL is {:.4g}, worse than the {:.4g} of "
      "predicting {} for every example; lower --lr (now {:g})",
      nll, baseline, d.task == Task::Classification ? "the class frequencies" : "the mean", train.lr));
}

// `weights` with the model's final layer replaced by its own seeded draw (a new head for a task
// with other classes: --adapters head=new).
NamedWeights with_new_head(const Model& model, NamedWeights weights, uint64_t seed) {
  const auto& last = model.require<LastLayerAccess>("--adapters head=new").last_layer();
  const auto& blocks = model.layout().blocks;
  std::vector<std::string> head = {blocks[last.weight_block].name};
  if (last.bias_block >= 0) head.push_back(blocks[last.bias_block].name);
  NamedWeights out;
  for (auto& [name, w] : weights)
    if (std::find(head.begin(), head.end(), name) == head.end()) out.emplace_back(name, w);
  for (auto& [name, w] : named_weights(model, model.init_params(seed)))
    if (std::find(head.begin(), head.end(), name) != head.end()) out.emplace_back(name, w);
  return out;
}

// theta for `model` from an --init file; see FitRequest::init. A new head (seeded) replaces the
// file's when `new_head`.
torch::Tensor initial_theta(const std::string& path, const Model& model, bool new_head, uint64_t seed) {
  check_input_file(path, "--init file");
  auto load = [&](NamedWeights weights) {
    return weights_to_theta(model, new_head ? with_new_head(model, std::move(weights), seed) : std::move(weights),
                            path);
  };
  if (!is_tensor_file(path)) return load(load_state_dict(path));
  auto source = FittedModel::load(path);
  torch::Tensor point;
  try {
    point = source.point();
  } catch (const InvalidArgument& e) {
    throw InvalidArgument(fmt::format("--init '{}': {}", path, e.what()));
  }
  return load(source.full_weights(point));
}

}  // namespace

// subset=pca:K or random:K names a subspace the method runs in (on a subspace model, where its
// subset is all of it): the spec with subset=all, and the subspace's kind and K.
std::tuple<std::string, std::string, int64_t> split_subspace(const std::string& method) {
  auto spec = MethodSpec::parse(method);
  auto it = spec.values.find("subset");
  if (it == spec.values.end()) return {method, "", 0};
  auto [kind, k] = parse_subspace_spec(it->second);
  if (kind.empty()) return {method, "", 0};
  if (spec.name != "nuts" && spec.name != "hmc" && spec.name != "ess" && spec.name != "vi")
    throw NotSupported(fmt::format("{}: subset={} is for nuts, hmc, ess and vi (inference inside the subspace)", spec.name,
                                   it->second));
  it->second = "all";
  return {spec.str(), kind, k};
}

// The subspace of `kind` with K directions around `map`'s fit: pca from SWAG's trajectory
// started at the MAP (its mean the origin), random around the MAP itself.
std::shared_ptr<Model> make_subspace(const FitRequest& given, const FittedModel& map, const std::string& kind,
                                     int64_t K) {
  auto map_theta = map.point().detach();
  const std::string description = fmt::format("{}:{}", kind, K);
  if (kind == "random")
    return restrict_to_subspace(map.model, map_theta,
                                random_directions(map_theta.size(0), K, given.train.seed, map_theta.options()),
                                description);
  FitRequest swag = given;
  swag.method = fmt::format("swag:start=0,rank={}", std::max<int64_t>(K, 20));
  swag.built_model = with_initial_weights(map.model, map_theta);
  swag.init = swag.freeze = swag.adapters = "";
  swag.map = nullptr;
  auto fitted = fit(swag);
  const auto& post = dynamic_cast<const SwagPosterior&>(*fitted.posterior);
  return restrict_to_subspace(map.model, post.means()[0], principal_directions(post.deviations()[0], K),
                              description);
}

namespace {
// A method that refines a MAP fit should not predict worse than that MAP. Where a validation part
// shows that it does, the fit says so (stderr and info["warnings"]) instead of passing silently.
void compare_with_map_on_validation(FittedModel& fitted, const FittedModel& map, const Dataset& val, bool print) {
  const double own = validation_nll(fitted, val), base = validation_nll(map, val);
  fitted.info["val_nll"] = own;
  fitted.info["map_val_nll"] = base;
  if (!(own > base * (1 + 1e-3))) return;  // a tenth of a percent is within the noise of a sampled predictive
  const bool laplace = fitted.method.rfind("laplace", 0) == 0;
  auto warning = fmt::format("{} ends worse than the MAP it starts from on the validation part (NLL {:.4f} vs {:.4f}); "
                             "prefer the MAP{}",
                             fitted.method, own, base,
                             laplace ? ", or tune the prior on the validation part (laplace:prior=val)" : "");
  fitted.info["warnings"].push_back(warning);
  if (print) fmt::print(stderr, "warning: {}\n", warning);
}

// lengthscale=auto: the length scales and amplitude of a GP fitted by its evidence on the same
// data (in the same standardized units).
void set_from_evidence(FunctionPrior& prior, const FitRequest& request) {
  if (request.data.fit.task != Task::Regression)
    throw InvalidArgument(fmt::format("prior '{}': lengthscale=auto fits a GP regression to the data; for "
                                      "classification give lengthscale=L",
                                      prior.spec));
  FitRequest g = request;
  g.method = "gp:kernel=" + prior.kernel;
  g.train.prior = "auto";
  g.train.quiet = true;
  g.init.clear(), g.freeze.clear(), g.adapters.clear(), g.built_model.reset();
  g.map = nullptr;
  auto gp = fit(g);
  const auto& post = dynamic_cast<const GpPosterior&>(*gp.posterior);
  prior.ard_log_lengthscale = post.kernel().log_lengthscale.detach().clone();
  prior.amplitude = std::exp(post.kernel().log_amplitude.item<double>());
}

Dataset as_token_ids(Dataset d) {
  d.standardize_inputs = false;
  return d;
}

// The prior file's standardization, checked against the data's inputs.
Standardizer units_for(const PriorFile& file, const Dataset& raw) {
  const auto& s = file.standardizer;
  const int64_t features = raw.x.dim() == 2 ? raw.x.size(1) : -1;
  if (s.x_mean.defined() && s.x_mean.numel() != features)
    throw InvalidArgument(fmt::format("prior file '{}' was learned on {} input features; data '{}' has inputs [{}]",
                                      file.prior.source, s.x_mean.numel(), raw.name, fmt::join(raw.input_shape(), ", ")));
  if (raw.task == Task::Classification && s.y_std != 1.0)
    throw InvalidArgument(fmt::format("prior file '{}' was learned on a regression target; data '{}' is a "
                                      "classification task", file.prior.source, raw.name));
  return s;
}
}  // namespace

namespace {
FittedModel fit_one(const FitRequest& given);

// Divisor of the method's own step size at each retry, and how many retries.
constexpr double kStepBackoff = 3.0;
constexpr int kStepRetries = 2;
}  // namespace

FittedModel fit(const FitRequest& given) {
  given.train.validate();
  if (given.train.tune) return fit_tuned(given);
  if (auto [single, members] = split_members(given.method); members > 0) return fit_members(given, single, members);
  // A step size the user gave is kept as given; the method's own default is a guess that can be
  // too large for a small or badly scaled problem, so a diverged fit retries at a third of it.
  // Only in one process: ranks of a data-parallel run could disagree about the divergence.
  const Communicator& comm = given.comm ? *given.comm : world_communicator();
  const bool own_step = given.train.lr == 0 && comm.world_size() == 1;
  if (!own_step) return fit_one(given);
  FitRequest request = given;
  std::vector<std::string> notes;
  double diverged_seconds = 0.0;  // the diverged tries count as fitting time too
  for (int retry = 0;; ++retry) {
    const auto start = std::chrono::steady_clock::now();
    try {
      FittedModel fitted = fit_one(request);
      for (const auto& note : notes) fitted.info["warnings"].push_back(note);
      if (retry > 0) fitted.info["fit_seconds"] = fitted.info.value("fit_seconds", 0.0) + diverged_seconds;
      return fitted;
    } catch (const TrainingDiverged& e) {
      diverged_seconds += seconds_since(start);
      const double lr = request.train.lr > 0 ? request.train.lr
                                             : resolve_method(std::get<0>(split_subspace(given.method))).first->default_lr;
      if (retry == kStepRetries)
        throw TrainingDiverged(fmt::format("{} (its own step size and {} smaller ones all diverged; give --lr)",
                                           e.what(), kStepRetries));
      request.train.lr = lr / kStepBackoff;
      notes.push_back(fmt::format("{} diverged at its own step size {:g}; refitted at {:g}", given.method, lr,
                                  request.train.lr));
      fmt::print(stderr, "warning: {}\n", notes.back());
    }
  }
}

namespace {
FittedModel fit_one(const FitRequest& given) {
  auto [method_text, subspace_kind, subspace_k] = split_subspace(given.method);
  auto [info, options] = resolve_method(method_text);
  if (!info->uses_network && (!given.init.empty() || !given.freeze.empty() || !given.adapters.empty() ||
                              !subspace_kind.empty()))
    throw InvalidArgument(fmt::format("{} does not use a network: --init, --freeze, --adapters and subset= do not "
                                      "apply to it",
                                      info->name));
  check_early_stopping(given, *info);
  FitRequest request = given;  // with the method's own step size where none was given
  if (request.train.lr == 0) request.train.lr = info->default_lr;
  const Dataset& raw = request.data.fit;
  const Communicator& comm = request.comm ? *request.comm : world_communicator();
  if (raw.size() == 0) throw DataError(fmt::format("data '{}' is empty: nothing to fit", raw.name));
  if (raw.size() < kMinExamples)
    throw DataError(fmt::format("data '{}' has {} example(s); fitting needs at least {} (check the spec's n= "
                                "and holdout= parts)",
                                raw.name, raw.size(), kMinExamples));

  FittedModel result;
  result.method = request.method;
  result.num_classes = raw.num_classes;
  result.likelihood = Likelihood::parse(request.likelihood, raw);
  // The network, before any wrapping: a given MAP's, one built in code, or one from its spec. Its
  // inputs decide the standardization: token ids, which are names, stay as they are.
  const std::shared_ptr<Model> network =
      request.map           ? request.map->model
      : request.built_model ? request.built_model
                            : make_model(request.model, raw.input_shape(), result.likelihood.output_dim(raw),
                                         request.dtype, request.device);
  result.standardizer = Standardizer::fit(network->find<TokenInputs>() ? as_token_ids(raw) : raw);
  std::optional<FunctionPrior> function_prior;
  if (is_function_prior_spec(request.train.prior)) {
    if (!info->takes_function_prior)
      throw InvalidArgument(fmt::format("{} takes a prior over the weights; a prior over functions (--prior {}) "
                                        "works with vi (family=diag)",
                                        info->name, request.train.prior));
    function_prior = FunctionPrior::parse(request.train.prior);
    if (function_prior->from_evidence) set_from_evidence(*function_prior, request);
  }
  // A learned prior lives in the units it was learned in: standardize as its tasks were.
  std::optional<PriorFile> prior_file;
  if (std::string path; is_prior_file_spec(request.train.prior, &path)) {
    prior_file = load_prior_file(path);
    if (!info->uses_weight_prior)
      throw InvalidArgument(fmt::format("{} does not use a prior over the weights; --prior {} does not apply to it",
                                        info->name, request.train.prior));
    if (prior_file->has_units) result.standardizer = units_for(*prior_file, raw);
    // The noise level learned with the prior, unless a likelihood is given.
    if (request.likelihood.empty() && raw.task == Task::Regression && prior_file->info.contains("sigma")) {
      request.likelihood = fmt::format("gaussian?sigma={:.17g}", prior_file->info.at("sigma").get<double>());
      result.likelihood = Likelihood::parse(request.likelihood, raw);
    }
  }

  // A post-hoc method refines a MAP fit of the same model; fit one if none was given.
  FittedModel map_fit;
  const FittedModel* map = request.map;
  if ((info->starts_from_map(options) || !subspace_kind.empty()) && !map) {
    FitRequest map_request = given;
    map_request.method = "map";
    if (function_prior) map_request.train.prior = "auto";  // the MAP takes the default weight prior
    map_fit = fit(map_request);
    map = &map_fit;
  }

  auto to_device = [&](const Dataset& d) {
    Dataset s = result.standardizer.apply(d).to(request.device);
    s.x = s.x.to(request.dtype);
    if (s.task == Task::Regression) s.y = s.y.to(request.dtype);
    return s;
  };
  Problem problem;
  problem.train = to_device(raw);
  if (request.data.val) problem.val = to_device(*request.data.val);
  problem.likelihood = result.likelihood;
  problem.model = map ? map->model : network;
  if (!map && request.built_model) {
    const auto& m = *request.built_model;
    if (m.input_shape() != raw.input_shape() || m.output_dim() != result.likelihood.output_dim(raw) ||
        m.dtype() != request.dtype || m.device() != request.device)
      throw InvalidArgument(fmt::format(
          "model '{}' takes inputs [{}] to {} outputs ({}, {}); this fit needs inputs [{}] to {} outputs ({}, {})",
          m.spec(), fmt::join(m.input_shape(), ", "), m.output_dim(), c10::toString(m.dtype()), m.device().str(),
          fmt::join(raw.input_shape(), ", "), result.likelihood.output_dim(raw), c10::toString(request.dtype),
          request.device.str()));
  }
  if (!map && !request.init.empty())
    problem.model = with_initial_weights(
        problem.model, initial_theta(request.init, *problem.model, draws_new_head(request.adapters),
                                     request.train.seed));
  if (!map && !request.adapters.empty()) {
    if (!request.freeze.empty())
      throw InvalidArgument(fmt::format("--freeze '{}' with --adapters: adapters freeze the backbone themselves; "
                                        "choose the adapted layers with targets= and the head with head=frozen",
                                        request.freeze));
    problem.model = add_adapters(problem.model, request.adapters, request.train.seed);
  }
  if (!map && !request.freeze.empty())
    problem.model = freeze_parameters(problem.model, request.freeze, problem.model->init_params(request.train.seed));
  FittedModel subspace_map;  // the MAP's stand-in inside the subspace: z at the subspace's point
  double subspace_seconds = 0.0;  // the SWAG trajectory a pca subspace comes from counts as fitting
  if (!subspace_kind.empty()) {
    const auto began = std::chrono::steady_clock::now();
    problem.model = make_subspace(given, *map, subspace_kind, subspace_k);
    subspace_seconds = seconds_since(began);
    subspace_map = *map;
    subspace_map.model = problem.model;
    subspace_map.posterior = std::make_shared<ParticlePosterior>(problem.model->init_params(0).unsqueeze(0));
    map = &subspace_map;
  }
  problem.function_prior = function_prior;
  problem.prior = prior_file ? prior_file->for_model(*problem.model)
                  : request.train.prior == "auto" || function_prior
                      ? GaussianPrior::isotropic(kDefaultWeightDecay * raw.size(), *problem.model)
                      : GaussianPrior::parse(request.train.prior, *problem.model);
  // Training under a prior with a mean starts at that mean (other members and chains at draws
  // from the prior), unless it starts from given weights.
  if (problem.prior.has_mean() && !map && request.init.empty() && request.adapters.empty())
    problem.model = with_prior_start(problem.model, problem.prior.mean, problem.prior.precision.rsqrt(),
                                     request.train.seed);
  problem.train_options = request.train;
  if (!comm.is_root()) problem.train_options.quiet = true;
  problem.map = map;

  auto start = std::chrono::steady_clock::now();
  auto method = info->make(options);
  const bool splits_units = comm.world_size() > 1 && method->splits_units(comm.world_size());
  if (comm.world_size() > 1 && (splits_units || method->data_parallel())) problem.comm = &comm;
  if (comm.world_size() > 1 && !problem.comm && method->wants_batches() && !problem.train_options.quiet)
    fmt::print(stderr, "note: {} is not data-parallel yet: each of the {} processes fits it on all the data\n",
               info->name, comm.world_size());
  method->init(problem);
  std::optional<EarlyStopping> early;
  if (method->wants_batches() && request.train.patience > 0) {
    result.model = problem.model;
    early.emplace(*method, result, *request.data.val, request.train.patience);
  }
  if (method->wants_batches())
    run_epochs(*method, problem, /*shard=*/problem.comm && !splits_units,
               early ? std::function<bool(int64_t)>([&](int64_t epoch) { return early->end_of_epoch(epoch); })
                     : std::function<bool(int64_t)>());
  if (early) early->restore();
  result.posterior = method->finalize();
  result.likelihood = method->fitted_likelihood();
  result.model = problem.model;
  double seconds = seconds_since(start);
  if (map && !request.map) seconds += map->info.value("fit_seconds", 0.0);
  seconds += subspace_seconds;
  if (method->wants_batches() && request.train.epochs > 0) check_not_diverged(result, raw, request.train);
  nlohmann::json opts_json;
  options.to_json(opts_json);
  result.info = {{"fit_seconds", seconds},
                 {"method_options", opts_json},
                 {"epochs", request.train.epochs},
                 {"batch_size", request.train.batch_size},
                 {"lr", request.train.lr},
                 {"prior_precision", problem.prior.describe()},
                 {"seed", request.train.seed},
                 {"n_fit", raw.size()},
                 {"data", raw.name}};
  if (problem.comm) {
    result.info["processes"] = comm.world_size();
    result.info["transport"] = comm.transport();
  }
  if (function_prior && function_prior->ard_log_lengthscale.defined()) {
    auto ls = function_prior->ard_log_lengthscale.exp().to(at::kDouble).contiguous();
    result.info["function_prior"] = {
        {"lengthscale", std::vector<double>(ls.data_ptr<double>(), ls.data_ptr<double>() + ls.numel())},
        {"amplitude", function_prior->amplitude}};
  }
  if (!subspace_kind.empty()) result.info["subspace_seconds"] = subspace_seconds;
  if (!request.init.empty()) result.info["init"] = request.init;
  if (!request.freeze.empty()) result.info["freeze"] = request.freeze;
  if (!request.adapters.empty()) {
    result.info["adapters"] = request.adapters;
    result.info["trainable_parameters"] = problem.model->layout().size;
  }
  auto report = method->report();
  if (!report.empty()) result.info["report"] = report;
  if (early) result.info["early_stopping"] = early->report();
  if (info->starts_from_map(options) && map && request.data.val)
    compare_with_map_on_validation(result, *map, *request.data.val, /*print=*/comm.is_root());
  return result;
}
}  // namespace

}  // namespace credence
