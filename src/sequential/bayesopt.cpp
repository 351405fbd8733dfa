#include "credence/sequential/bayesopt.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>

#include "credence/core/error.h"
#include "credence/core/progress.h"
#include "credence/core/files.h"
#include "credence/core/rng.h"
#include "credence/fit/fit.h"
#include "credence/posterior/gp.h"
#include "credence/sequential/acquisition.h"
#include "credence/sequential/objectives.h"

namespace credence {
namespace {

constexpr int64_t kSobolCandidates = 2000;  // global candidates per round
constexpr int64_t kLocalPerPoint = 200;     // candidates around each of the best observations
constexpr int64_t kLocalCentres = 5;
constexpr int64_t kRefinePerPoint = 100;    // second pass around the best candidates

// Gaussian perturbations of `centres` [K, D] in the unit cube, clipped to it: [K * per, D].
torch::Tensor around(const torch::Tensor& centres, int64_t per, double scale, uint64_t key) {
  auto noise = keyed_randn({centres.size(0), per, centres.size(1)}, key, centres.options()) * scale;
  return (centres.unsqueeze(1) + noise).reshape({-1, centres.size(1)}).clamp(0.0, 1.0);
}

}  // namespace

torch::Tensor thompson_draws(const FittedModel& fitted, const torch::Tensor& x, int64_t n, uint64_t key,
                             int64_t samples) {
  const double y_mean = fitted.standardizer.y_mean, y_std = fitted.standardizer.y_std;
  auto xs = fitted.standardizer.inputs(x.to(fitted.model->device(), fitted.model->dtype()));
  if (const auto* gp = dynamic_cast<const GpPosterior*>(fitted.posterior.get()))
    return gp->function_draws(xs, n, key) * y_std + y_mean;
  PredictOptions options;
  options.samples = samples;
  options.seed = rng_key(key, Stream::Sample, 1);
  auto p = fitted.posterior->predict(*fitted.model, fitted.likelihood, xs, y_mean, y_std, options);
  if (p.sample_mean.defined() && p.sample_mean.size(0) > 1) {  // one component per draw
    auto m = p.sample_mean.to(at::kCPU, at::kDouble);
    auto w = p.weights.defined() ? p.weights.to(at::kCPU, at::kDouble) : at::ones({m.size(0)}, m.options());
    return m.index_select(0, at::multinomial(w, n, /*replacement=*/true, cpu_generator(key)));
  }
  // One Gaussian per input (e.g. the linearized Laplace): a weight draw through the network.
  auto theta = fitted.posterior->sample(n, rng_key(key, Stream::Sample, 2));
  return stacked_outputs(*fitted.model, xs, theta, 4096).select(2, 0).to(at::kCPU, at::kDouble) * y_std + y_mean;
}

const std::vector<std::string>& optimization_acquisitions() {
  static const std::vector<std::string> names = {"ei", "ucb", "thompson", "random"};
  return names;
}

void BayesOptOptions::validate() const {
  if (lower.empty() || lower.size() != upper.size())
    throw InvalidArgument(fmt::format("the box needs one LO:HI per dimension (got {} lower and {} upper bounds)",
                                      lower.size(), upper.size()));
  for (size_t i = 0; i < lower.size(); ++i)
    if (!(std::isfinite(lower[i]) && std::isfinite(upper[i]) && lower[i] < upper[i]))
      throw InvalidArgument(fmt::format("bound {} is {}:{}; each needs finite LO < HI", i + 1, lower[i], upper[i]));
  const auto& known = optimization_acquisitions();
  if (std::find(known.begin(), known.end(), acquisition) == known.end())
    throw InvalidArgument(fmt::format("unknown acquisition '{}' (known: {})", acquisition, fmt::join(known, ", ")));
  if (initial < 1) throw InvalidArgument(fmt::format("initial points must be >= 1, got {}", initial));
  if (samples < 2) throw InvalidArgument(fmt::format("samples must be >= 2, got {}", samples));
  if (steps < 1) throw InvalidArgument(fmt::format("steps must be >= 1, got {}", steps));
  if (!(beta >= 0)) throw InvalidArgument(fmt::format("beta must be >= 0, got {}", beta));
  train.validate();
  auto [info, opts] = resolve_fit_method(method);  // names an unknown method or option now, not after the design
}

nlohmann::json BayesOptOptions::to_json() const {
  return {{"lower", lower},         {"upper", upper},     {"method", method},   {"model", model},
          {"likelihood", likelihood}, {"epochs", train.epochs}, {"batch_size", train.batch_size},
          {"lr", train.lr},         {"prior", train.prior}, {"steps", steps},   {"acquisition", acquisition},
          {"beta", beta},           {"initial", initial}, {"samples", samples}, {"maximize", maximize},
          {"seed", seed}};
}

BayesOptOptions BayesOptOptions::from_json(const nlohmann::json& j) {
  BayesOptOptions o;
  o.lower = j.at("lower").get<std::vector<double>>();
  o.upper = j.at("upper").get<std::vector<double>>();
  o.method = j.at("method");
  o.model = j.at("model");
  o.likelihood = j.at("likelihood");
  o.train.epochs = j.at("epochs");
  o.train.batch_size = j.at("batch_size");
  o.train.lr = j.at("lr");
  o.train.prior = j.at("prior");
  o.train.quiet = true;
  o.steps = j.at("steps");
  o.acquisition = j.at("acquisition");
  o.beta = j.at("beta");
  o.initial = j.at("initial");
  o.samples = j.at("samples");
  o.maximize = j.at("maximize");
  o.seed = j.at("seed");
  return o;
}

BayesOpt::BayesOpt(BayesOptOptions options) : options_(std::move(options)) {
  options_.train.quiet = true;
  options_.validate();
}

void BayesOpt::observe(const std::vector<double>& x, double y) {
  const auto& lo = options_.lower;
  const auto& hi = options_.upper;
  if (x.size() != lo.size())
    throw InvalidArgument(fmt::format("observation has {} coordinates; the box has {}", x.size(), lo.size()));
  for (size_t i = 0; i < x.size(); ++i) {
    const double slack = 1e-9 * (hi[i] - lo[i]);
    if (!(x[i] >= lo[i] - slack && x[i] <= hi[i] + slack))
      throw InvalidArgument(fmt::format("observation coordinate {} is {}, outside the box [{}, {}]", i + 1, x[i],
                                        lo[i], hi[i]));
  }
  if (!std::isfinite(y))
    throw InvalidArgument(fmt::format("observation value {} is not finite; record failed runs elsewhere", y));
  xs_.push_back(x);
  ys_.push_back(y);
}

double BayesOpt::best_value() const {
  if (ys_.empty()) throw InvalidArgument("no observations yet");
  return options_.maximize ? *std::max_element(ys_.begin(), ys_.end()) : *std::min_element(ys_.begin(), ys_.end());
}

const std::vector<double>& BayesOpt::best_point() const {
  const double best = best_value();
  for (size_t i = 0; i < ys_.size(); ++i)
    if (ys_[i] == best) return xs_[i];
  return xs_.back();
}

std::vector<std::vector<double>> BayesOpt::suggest(int64_t k) {
  if (k < 1) throw InvalidArgument(fmt::format("suggest needs k >= 1, got {}", k));
  const int64_t D = static_cast<int64_t>(options_.lower.size());
  const uint64_t key = rng_key(options_.seed, Stream::Sample, 0xb0, rounds_++);
  auto start = std::chrono::steady_clock::now();
  torch::Tensor unit;
  if (sobol_used_ < options_.initial || size() < 2) {
    unit = sobol_points(k, D, options_.seed, sobol_used_);
    sobol_used_ += k;
    last_round_ = {{"phase", "initial"}};
  } else if (options_.acquisition == "random") {
    unit = at::rand({k, D}, cpu_generator(key), at::TensorOptions().dtype(at::kDouble));
    last_round_ = {{"phase", "random"}};
  } else {
    unit = suggest_with_surrogate(k, key);
  }
  last_round_["seconds"] = seconds_since(start);
  return to_box(unit);
}

std::vector<std::vector<double>> BayesOpt::to_box(const torch::Tensor& unit) const {
  const auto dbl = at::TensorOptions().dtype(at::kDouble);
  const auto lo = at::tensor(options_.lower, dbl);
  const auto x = (lo + unit.to(at::kDouble) * (at::tensor(options_.upper, dbl) - lo)).contiguous();
  std::vector<std::vector<double>> points;
  for (int64_t i = 0; i < x.size(0); ++i)
    points.emplace_back(x[i].data_ptr<double>(), x[i].data_ptr<double>() + x.size(1));
  return points;
}

torch::Tensor BayesOpt::suggest_with_surrogate(int64_t k, uint64_t key) {
  const int64_t N = size(), D = static_cast<int64_t>(options_.lower.size());
  auto dbl = at::TensorOptions().dtype(at::kDouble);
  auto lo = at::tensor(options_.lower, dbl), width = at::tensor(options_.upper, dbl) - lo;
  auto X = at::empty({N, D}, dbl), t = at::empty({N}, dbl);
  for (int64_t i = 0; i < N; ++i) {
    X[i] = (at::tensor(xs_[i], dbl) - lo) / width;
    t[i] = options_.maximize ? ys_[i] : -ys_[i];  // the surrogate always maximizes
  }
  Dataset data;
  data.x = X;
  data.y = t;
  data.task = Task::Regression;
  data.name = "observations";

  FitRequest request;
  request.data.fit = data;
  request.model = options_.model;
  request.method = options_.method;
  request.likelihood = options_.likelihood;
  request.train = options_.train;
  request.train.seed = rng_key(key, Stream::Init);
  request.train.quiet = true;
  if (request.train.epochs == 0) {
    const int64_t per_epoch = (N + request.train.batch_size - 1) / request.train.batch_size;
    request.train.epochs = std::max<int64_t>(1, (options_.steps + per_epoch - 1) / per_epoch);
  }
  request.dtype = torch::kFloat64;
  auto fit_start = std::chrono::steady_clock::now();
  // A full-batch fit with learned noise can end on an unstable step; a long loop then goes on with
  // a smaller step, as the divergence message advises, rather than stopping.
  FittedModel fitted;
  int retries = 0;
  for (;; ++retries) {
    try {
      fitted = fit(request);
      break;
    } catch (const NumericalError&) {
      if (retries == 2) throw;
      const double lr = request.train.lr > 0 ? request.train.lr : find_method(MethodSpec::parse(request.method).name).default_lr;
      request.train.lr = lr / 3;
    }
  }
  const double fit_seconds = seconds_since(fit_start);
  auto acq_start = std::chrono::steady_clock::now();

  PredictOptions predict_options;
  predict_options.samples = options_.samples;
  predict_options.seed = rng_key(key, Stream::Sample, 1);
  const double best = t.max().item<double>();
  const double noise_var = std::pow(fitted.likelihood.sigma * fitted.standardizer.y_std, 2);
  auto predict = [&](const torch::Tensor& unit) {
    Dataset c;
    c.x = unit;
    c.y = at::zeros({unit.size(0)}, dbl);
    c.task = Task::Regression;
    return fitted.predict(c, predict_options);
  };
  auto score = [&](const Predictive& p) {
    auto f = latent_objective(p, noise_var);
    if (options_.acquisition == "ucb") return upper_confidence_bound(f, options_.beta);
    auto ei = expected_improvement(f, best);
    // Far from the data EI can underflow to 0 everywhere: then the optimistic bound orders the
    // candidates.
    if (ei.max().item<double>() <= 1e-12 * (1 + std::abs(best))) return upper_confidence_bound(f, options_.beta);
    return ei;
  };

  // Candidates: a fresh Sobol design plus points around the best observations.
  auto order = std::get<1>(t.sort(0, /*descending=*/true));
  auto centres = X.index_select(0, order.narrow(0, 0, std::min<int64_t>(kLocalCentres, N)));
  auto candidates = at::cat({sobol_points(kSobolCandidates, D, key), around(centres, kLocalPerPoint / 2, 0.1, key + 1),
                             around(centres, kLocalPerPoint / 2, 0.01, key + 2)});
  std::vector<torch::Tensor> chosen;  // rows of the unit cube
  if (options_.acquisition == "thompson") {
    // Each point maximizes one draw of the objective.
    if (dynamic_cast<const GpPosterior*>(fitted.posterior.get()))  // a joint draw costs M^3: fewer global candidates
      candidates = at::cat({candidates.narrow(0, 0, kSobolCandidates / 4),
                            candidates.narrow(0, kSobolCandidates, candidates.size(0) - kSobolCandidates)});
    auto draws = thompson_draws(fitted, candidates, k, rng_key(key, Stream::Sample, 2), options_.samples);
    for (int64_t j = 0; j < k; ++j) chosen.push_back(candidates[draws[j].argmax().item<int64_t>()]);
  } else {
    auto s = score(predict(candidates));
    // Refine: a second, finer pass around the best candidates.
    auto top = std::get<1>(s.topk(std::min<int64_t>(kLocalCentres, s.size(0))));
    auto fine = around(candidates.index_select(0, top), kRefinePerPoint, 0.005, key + 3);
    candidates = at::cat({candidates, fine});
    s = at::cat({s, score(predict(fine))});
    // A batch: the best candidates at least `radius` apart (unit-cube distance).
    const double radius = 0.05 * std::sqrt(static_cast<double>(D));
    auto remaining = s.clone();
    for (int64_t j = 0; j < k; ++j) {
      const int64_t i = remaining.argmax().item<int64_t>();
      if (!std::isfinite(remaining[i].item<double>())) break;
      chosen.push_back(candidates[i]);
      auto dist = (candidates - candidates[i]).pow(2).sum(1).sqrt();
      remaining.masked_fill_(dist < radius, -std::numeric_limits<double>::infinity());
    }
    while (static_cast<int64_t>(chosen.size()) < k)  // the box ran out of separated candidates
      chosen.push_back(at::rand({D}, cpu_generator(rng_key(key, Stream::Sample, 4, chosen.size())), dbl));
  }
  last_round_ = {{"phase", "surrogate"},
                 {"fit_seconds", fit_seconds},
                 {"acquisition_seconds", seconds_since(acq_start)},
                 {"noise_std", std::sqrt(noise_var)},
                 {"retries", retries}};
  return at::stack(chosen);
}

nlohmann::json BayesOpt::state() const {
  return {{"format", "credence-bayesopt"}, {"version", 1},           {"options", options_.to_json()},
          {"points", xs_},                 {"values", ys_},          {"rounds", rounds_},
          {"sobol_used", sobol_used_}};
}

BayesOpt BayesOpt::continuing(BayesOptOptions options, const std::vector<std::vector<double>>& points,
                              const std::vector<double>& values) {
  if (points.size() != values.size())
    throw InvalidArgument(fmt::format("{} points but {} values", points.size(), values.size()));
  BayesOpt b(std::move(options));
  for (size_t i = 0; i < points.size(); ++i) b.observe(points[i], values[i]);
  b.rounds_ = b.sobol_used_ = b.size();
  return b;
}

BayesOpt BayesOpt::from_state(const nlohmann::json& state) {
  if (state.value("format", "") != "credence-bayesopt")
    throw IoError("not a credence optimization state (its format field is not credence-bayesopt)");
  auto points = state.at("points").get<std::vector<std::vector<double>>>();
  auto values = state.at("values").get<std::vector<double>>();
  if (points.size() != values.size()) throw IoError("optimization state: points and values differ in number");
  auto b = continuing(BayesOptOptions::from_json(state.at("options")), points, values);
  b.rounds_ = state.at("rounds");
  b.sobol_used_ = state.at("sobol_used");
  return b;
}

void BayesOpt::save(const std::string& path, bool overwrite) const {
  write_file_atomically(path, overwrite, [&](std::ostream& out) { out << state().dump(1) << "\n"; }, "--state");
}

BayesOpt BayesOpt::load(const std::string& path) {
  check_input_file(path, "optimization state");
  std::ifstream in(path);
  nlohmann::json j;
  try {
    in >> j;
  } catch (const nlohmann::json::exception& e) {
    throw IoError(fmt::format("optimization state '{}' is not valid JSON: {}", path, e.what()));
  }
  try {
    return from_state(j);
  } catch (const nlohmann::json::exception& e) {
    throw IoError(fmt::format("optimization state '{}' lacks a field or has a wrong type: {}", path, e.what()));
  }
}

}  // namespace credence
