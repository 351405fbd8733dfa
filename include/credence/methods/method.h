#pragma once
/// The one small interface every inference method implements, and the registry that names them.
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "credence/core/options.h"
#include "credence/core/tensor_io.h"
#include "credence/data/dataset.h"
#include "credence/likelihood/likelihood.h"
#include "credence/methods/function_prior.h"
#include "credence/posterior/fitted.h"
#include "credence/prior/prior.h"

namespace credence {

class Communicator;

/// The shared training recipe. Defaults are the documented default recipe: Adam, lr 1e-3,
/// batch 128, 20 epochs, prior precision 5e-4 * N (= weight decay 5e-4; 30 at N = 60,000).
struct TrainOptions {
  int64_t epochs = 20;
  int64_t batch_size = 128;
  /// Step size; 0 (the default) is the method's own (MethodInfo::default_lr).
  double lr = 0.0;
  /// The prior (--prior): "auto" (precision 5e-4 * N), a precision ("30" or "gaussian:30"), one
  /// per layer ("1,1,10"), a learned prior's file, or a prior over functions ("gp:rbf?...").
  std::string prior = "auto";
  uint64_t seed = 0;
  bool quiet = false;
  /// --early-stop: end training once this many epochs pass without a better validation NLL,
  /// keeping the best epoch's state (0: off). Needs a validation part (holdout=val:F).
  int64_t patience = 0;
  /// --tune: choose the step size, weight decay and the method's own tune_space on the validation
  /// part first (fit() then returns the best candidate's fit; see src/fit/tune.cpp).
  bool tune = false;
  void validate() const;
};

/// What a method is fitted to: everything in standardized units on the model's device.
struct Problem {
  std::shared_ptr<Model> model;
  Likelihood likelihood;
  GaussianPrior prior;
  /// Set when --prior is a prior over functions (gp:...), for the methods that take one
  /// (MethodInfo::takes_function_prior); `prior` is then the default weight prior, unused by them.
  std::optional<FunctionPrior> function_prior;
  Dataset train;
  std::optional<Dataset> val;
  TrainOptions train_options;
  const FittedModel* map = nullptr;  ///< the MAP fit, for post-hoc methods
  /// Set in data-parallel runs: each rank steps on its share of every minibatch (see reduce_gradients).
  const Communicator* comm = nullptr;
};

struct Batch {
  torch::Tensor x, y;  ///< [B, ...] and [B]; or one batch per stacked member, [M, B, ...] and [M, B]
  torch::Tensor index;  ///< rows of the training set (keys per-example random numbers)
  int64_t epoch = 0, step = 0;
  /// Data-parallel runs: this rank's rows start at `offset` in a minibatch of `global_rows` (0: all).
  int64_t offset = 0, global_rows = 0;
};

struct StepInfo {
  double loss = 0.0;  ///< the minimized objective per example
};

/// init -> step* -> finalize. The fit driver owns epochs, batching, progress and device moves, so
/// a method holds only its math; its named state makes checkpoints and reductions generic.
class Method {
 public:
  virtual ~Method() = default;
  virtual void init(const Problem& problem) = 0;
  /// False for methods with no training loop of their own (post-hoc on a MAP fit).
  virtual bool wants_batches() const { return true; }
  /// True when steps on shards of a minibatch, with gradients passed through reduce_gradients,
  /// give the 1-process update; other methods run whole on every rank of a distributed run.
  virtual bool data_parallel() const { return false; }
  /// True when the method spreads independent units of work (ensemble members, MCMC chains) over
  /// the `world_size` ranks of problem.comm, each fitting its share on all the data, and gathers
  /// them in finalize; batches are then not sharded. Takes precedence over data_parallel().
  virtual bool splits_units(int world_size) const { return false; }
  virtual StepInfo step(const Batch& batch);
  virtual std::shared_ptr<Posterior> finalize() = 0;
  /// The likelihood as fitted (e.g. with learned noise).
  virtual Likelihood fitted_likelihood() const = 0;
  /// What the method reports about its run (e.g. MCMC diagnostics), kept in the fit's info.
  virtual nlohmann::json report() const { return nlohmann::json::object(); }
  TensorMap& state() { return state_; }

 protected:
  TensorMap state_;
};

struct MethodInfo {
  std::string name;
  std::string summary;
  std::vector<Field> fields;
  bool post_hoc = false;  ///< starts from a MAP fit (compare reuses one)
  /// False for a method that does not use the network (the GP): --model, --init and the like do
  /// not apply, and its posterior has no weight vectors.
  bool uses_network = true;
  /// False for a method whose prior is its own (the GP's kernel): it refuses a learned --prior
  /// file rather than ignore it.
  bool uses_weight_prior = true;
  /// True for a method that can take a prior over functions (--prior gp:...) instead.
  bool takes_function_prior = false;
  /// True when the method's state after any epoch is a posterior (finalize() may run at every
  /// epoch without side effects), so early stopping can keep its best epoch. Samplers and SWAG,
  /// whose epochs are a collection schedule, are not.
  bool stops_early = false;
  /// The method's own options that --tune searches, with their candidate values; the step size
  /// and the weight decay are searched for every method that trains.
  std::vector<std::pair<std::string, std::vector<std::string>>> tune_space;
  /// The step size when none is given (--lr): Adam's 1e-3 for most; a method whose step means
  /// something else (IVON's fraction of a Newton step) sets its own.
  double default_lr = 1e-3;
  /// Options with which a method that is not post-hoc also starts from a MAP fit (e.g. init=map).
  std::function<bool(const Options&)> uses_map;
  bool starts_from_map(const Options& o) const { return post_hoc || (uses_map && uses_map(o)); }
  std::function<std::unique_ptr<Method>(const Options&)> make;
  /// Checks option values beyond their types (run before any training); may be empty.
  std::function<void(const Options&)> validate;
};

/// Data-parallel runs: turns this rank's gradients of a loss averaged over its rows of the batch into
/// those of the loss averaged over the whole batch (scaled by local / global rows, summed over ranks),
/// in place; undefined tensors are skipped. Nothing happens when `problem.comm` is unset.
void reduce_gradients(const Problem& problem, const Batch& batch, const std::vector<torch::Tensor>& grads);
/// The same for the gradients of every tensor in `state`.
void reduce_gradients(const Problem& problem, const Batch& batch, const TensorMap& state);
/// The whole-batch mean of a per-row quantity from this rank's mean over its rows.
double reduce_mean(const Problem& problem, const Batch& batch, double local_mean);

/// The units [first, last) of `units` that this rank owns when they are spread over problem.comm
/// in contiguous blocks; all of them without a group.
std::pair<int64_t, int64_t> owned_units(const Problem& problem, int64_t units);
/// Every rank's `local` rows (units [first, first + local.size(0)) of `units`) stacked in unit
/// order, on every rank; `local` itself without a group.
torch::Tensor gather_units(const Problem& problem, const torch::Tensor& local, int64_t first, int64_t units);

/// Starting parameters [M, P] of M stacked members, chains or particles: member 0 starts where
/// MAP starts (init_params(seed)), member m from the keyed seed (seed, Init, 1, m).
torch::Tensor member_init_params(const Model& model, uint64_t seed, int64_t members);

/// The MAP fit's parameters [P] of a method started from it (problem.map); InvalidArgument naming
/// `method` when there is none.
torch::Tensor map_params(const Problem& problem, const std::string& method);

const std::vector<MethodInfo>& method_registry();
/// InvalidArgument naming the known methods when `name` is not one.
const MethodInfo& find_method(const std::string& name);
/// Parses and validates `name:key=value,...` against the method's fields.
std::pair<const MethodInfo*, Options> resolve_method(const std::string& spec);

}  // namespace credence
