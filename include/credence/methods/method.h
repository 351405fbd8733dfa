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
#include "credence/posterior/fitted.h"
#include "credence/prior/prior.h"

namespace credence {

/// The shared training recipe. Defaults are the documented default recipe: Adam, lr 1e-3,
/// batch 128, 20 epochs, prior precision 5e-4 * N (= weight decay 5e-4; 30 at N = 60,000).
struct TrainOptions {
  int64_t epochs = 20;
  int64_t batch_size = 128;
  double lr = 1e-3;
  /// Prior precision: "auto" (5e-4 * N), one value, or one per layer ("1,1,10").
  std::string prior = "auto";
  uint64_t seed = 0;
  bool quiet = false;
  void validate() const;
};

/// What a method is fitted to: everything in standardized units on the model's device.
struct Problem {
  std::shared_ptr<Model> model;
  Likelihood likelihood;
  GaussianPrior prior;
  Dataset train;
  std::optional<Dataset> val;
  TrainOptions train_options;
  const FittedModel* map = nullptr;  ///< the MAP fit, for post-hoc methods
};

struct Batch {
  torch::Tensor x, y;  ///< [B, ...] and [B]; or one batch per stacked member, [M, B, ...] and [M, B]
  torch::Tensor index;  ///< rows of the training set (keys per-example random numbers)
  int64_t epoch = 0, step = 0;
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
  std::function<std::unique_ptr<Method>(const Options&)> make;
  /// Checks option values beyond their types (run before any training); may be empty.
  std::function<void(const Options&)> validate;
};

/// Starting parameters [M, P] of M stacked members, chains or particles: member 0 starts where
/// MAP starts (init_params(seed)), member m from the keyed seed (seed, Init, 1, m).
torch::Tensor member_init_params(const Model& model, uint64_t seed, int64_t members);

const std::vector<MethodInfo>& method_registry();
/// InvalidArgument naming the known methods when `name` is not one.
const MethodInfo& find_method(const std::string& name);
/// Parses and validates `name:key=value,...` against the method's fields.
std::pair<const MethodInfo*, Options> resolve_method(const std::string& spec);

}  // namespace credence
