#include "credence/sequential/active.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>

#include "credence/core/error.h"
#include "credence/core/progress.h"
#include "credence/core/rng.h"
#include "credence/eval/metrics.h"
#include "credence/sequential/acquisition.h"

namespace credence {
namespace {

// The first labelled rows: `n` at random, or for classification as evenly over classes as the
// pool allows.
torch::Tensor initial_rows(const Dataset& pool, int64_t n, bool balanced, uint64_t key) {
  auto order = keyed_permutation(pool.size(), key);
  if (!balanced || pool.task != Task::Classification) return order.narrow(0, 0, n);
  auto labels = pool.y.to(at::kCPU).index_select(0, order);
  std::vector<std::vector<int64_t>> by_class(pool.num_classes);
  auto* lab = labels.data_ptr<int64_t>();
  auto* ord = order.data_ptr<int64_t>();
  for (int64_t i = 0; i < order.size(0); ++i) by_class[lab[i]].push_back(ord[i]);
  std::vector<int64_t> chosen;
  for (size_t depth = 0; static_cast<int64_t>(chosen.size()) < n; ++depth)
    for (const auto& rows : by_class)
      if (depth < rows.size() && static_cast<int64_t>(chosen.size()) < n) chosen.push_back(rows[depth]);
  return at::tensor(chosen, at::TensorOptions().dtype(at::kLong));
}

void check_selection(const std::string& selection) {
  if (selection != "top" && selection != "power")
    throw InvalidArgument(fmt::format("unknown selection '{}' (known: top, power)", selection));
}

}  // namespace

void ActiveLearningOptions::validate() const {
  train.validate();
  if (initial < 2) throw InvalidArgument(fmt::format("--initial must be >= 2 labelled rows, got {}", initial));
  if (batch < 1) throw InvalidArgument(fmt::format("--batch must be >= 1, got {}", batch));
  if (budget < initial)
    throw InvalidArgument(fmt::format("--budget ({}) must be at least --initial ({})", budget, initial));
  check_selection(selection);
  const auto& names = active_acquisitions();
  if (std::find(names.begin(), names.end(), acquisition) == names.end())
    throw InvalidArgument(fmt::format("unknown acquisition '{}' (known: {})", acquisition, fmt::join(names, ", ")));
  resolve_fit_method(method);
}

torch::Tensor select_queries(const FittedModel& fitted, const Dataset& pool, const torch::Tensor& candidates,
                             const std::string& acquisition, int64_t k, uint64_t key, int64_t samples,
                             const std::string& selection) {
  check_selection(selection);
  k = std::min<int64_t>(k, candidates.size(0));
  if (acquisition == "random") return candidates.index_select(0, keyed_permutation(candidates.size(0), key).narrow(0, 0, k));
  PredictOptions options;
  options.samples = samples;
  options.seed = rng_key(key, Stream::Sample);
  auto p = fitted.predict(pool.subset(candidates), options);
  auto score = active_score(p, acquisition).to(at::kCPU, at::kDouble);
  if (selection == "power") return candidates.index_select(0, draw_in_proportion(score, k, rng_key(key, Stream::Sample, 1)));
  // A random order first, so that ties (e.g. many zero scores) are broken at random, not by index.
  auto shuffle = keyed_permutation(score.size(0), rng_key(key, Stream::Shuffle));
  auto top = std::get<1>(score.index_select(0, shuffle).topk(k));
  return candidates.index_select(0, shuffle.index_select(0, top));
}

std::vector<ActiveRound> run_active_learning(const Dataset& pool, const Dataset& test,
                                             const ActiveLearningOptions& options,
                                             const std::function<void(const ActiveRound&)>& on_round) {
  options.validate();
  if (options.budget > pool.size())
    throw InvalidArgument(fmt::format("--budget {} is more than the pool's {} rows", options.budget, pool.size()));
  if (pool.task != test.task || pool.num_classes != test.num_classes || pool.input_shape() != test.input_shape())
    throw InvalidArgument("the pool and the test set differ in task, classes or input shape");
  auto labelled_mask = at::zeros({pool.size()}, at::TensorOptions().dtype(at::kBool));
  auto labelled = initial_rows(pool, options.initial, options.balanced, rng_key(options.seed, Stream::Holdout, 0xa1));
  labelled_mask.index_fill_(0, labelled, true);
  std::vector<ActiveRound> rounds;
  auto added = labelled;
  for (int64_t round = 0;; ++round) {
    FitRequest request;
    request.data.fit = pool.subset(labelled);
    request.model = options.model;
    request.method = options.method;
    request.likelihood = options.likelihood;
    request.init = options.init;
    request.freeze = options.freeze;
    request.adapters = options.adapters;
    request.train = options.train;
    request.train.seed = rng_key(options.seed, Stream::Init, 0xa2, round);
    request.train.quiet = true;
    auto start = std::chrono::steady_clock::now();
    auto fitted = fit(request);
    ActiveRound r;
    r.labels = labelled.size(0);
    r.added.assign(added.data_ptr<int64_t>(), added.data_ptr<int64_t>() + added.numel());
    r.fit_seconds = seconds_since(start);
    PredictOptions predict_options;
    predict_options.samples = options.samples;
    r.metrics = standard_metrics(fitted.predict(test, predict_options), test.y);
    const bool done = labelled.size(0) >= options.budget;
    if (!done) {
      auto score_start = std::chrono::steady_clock::now();
      auto candidates = at::nonzero(~labelled_mask).flatten();
      const int64_t k = std::min(options.batch, options.budget - labelled.size(0));
      auto picked = select_queries(fitted, pool, candidates, options.acquisition, k,
                                   rng_key(options.seed, Stream::Sample, 0xa3, round), options.samples,
                                   options.selection);
      labelled_mask.index_fill_(0, picked, true);
      labelled = at::cat({labelled, picked});
      added = picked.contiguous();
      r.score_seconds = seconds_since(score_start);
    }
    rounds.push_back(r);
    if (on_round) on_round(r);
    if (done) break;
  }
  return rounds;
}

}  // namespace credence
