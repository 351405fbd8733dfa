#pragma once
// Gradient training of point parameters, one vector [P] (MAP) or M stacked members [M, P]
// (ensembles) trained independently in one batched computation.
#include <torch/optim/optimizer.h>

#include <memory>
#include <string>

#include "bucketed_reduction.h"
#include "credence/methods/method.h"

namespace credence {

/// The `shuffle` option of methods that train stacked members: member, shared or auto.
Field shuffle_field();
/// Whether each of `members` members takes its own data order under `shuffle`: auto shares one
/// order when the network's first layer, adapter included, is frozen (a backbone adapted further
/// on), so that the frozen layers before the first trainable one run once for all members.
bool members_shuffle_apart(const std::string& shuffle, const Model& model, int64_t members);

/// Per-member minibatches for M stacked members: member m takes the rows at the batch's positions
/// of its own keyed permutation of the epoch (member 0's is the fit driver's), gathered into one
/// [M, B, ...] batch in reused buffers. The members are `first`, ..., `first + M - 1` of the fit.
class MemberBatches {
 public:
  Batch make(const Problem& problem, const Batch& batch, int64_t members, int64_t first = 0);

 private:
  int64_t epoch_ = -1;
  torch::Tensor perms_;  // [M, N]: this epoch's permutation of each member
  torch::Tensor x_buf_, y_buf_;
};

class PointTrainer : public Method {
 public:
  StepInfo step(const Batch& batch) override;
  std::shared_ptr<Posterior> finalize() override;
  Likelihood fitted_likelihood() const override;
  /// With overlapped gradient sums: their bucket count and the seconds spent waiting for them.
  nlohmann::json report() const override { return reduction_.report(); }

 protected:
  /// Takes `theta` ([P] or [M, P]) as the trained state; `optimizer` is adam or sgd (momentum 0.9).
  /// A learned Gaussian noise is one scalar shared by stacked members.
  void setup(const Problem& problem, torch::Tensor theta, const std::string& optimizer);
  /// Sets up `members` stacked members started by member_init_params. With `spread` (the method
  /// splits_units in a run of several processes) this process trains only its block of them, the
  /// gradient of a noise level they share is summed over the processes, and finalize gathers all.
  void setup_members(const Problem& problem, int64_t members, const std::string& optimizer, bool spread);
  int64_t first_member() const { return first_member_; }
  /// The members this process trains (all of them unless spread).
  int64_t local_members() const { return state_.at("theta").size(0); }
  int64_t members() const { return members_; }
  /// Rows [M_local, ...] of this process's members -> [M, ...] of all (as they are unless spread).
  torch::Tensor gather_members(const torch::Tensor& local) const;
  /// Sets the optimizer's learning rate from here on (e.g. SWAG's collection phase).
  void set_lr(double lr);
  /// An objective added to the batch NLL before backward (e.g. a function-space repulsion between
  /// members); undefined for none.
  virtual torch::Tensor extra_objective(const torch::Tensor& outputs, const Batch& batch) { return {}; }
  /// Rewrites the gradient [P] or [M, P] (NLL + prior, per example) before the optimizer step,
  /// e.g. into a kernelized particle update.
  virtual void adjust_gradient(torch::Tensor& grad) {}
  /// The network outputs a step fits (e.g. with dropout masks); the plain forward by default,
  /// through the bucketed reduction's hooked blocks when the step shards its minibatch.
  virtual torch::Tensor outputs(const Batch& batch, const torch::Tensor& theta) {
    return reduction_.forward(*problem_, batch, theta);
  }

 private:
  const Problem* problem_ = nullptr;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  BucketedReduction reduction_;
  bool spread_ = false;  // members spread over the processes
  int64_t first_member_ = 0, members_ = 1;
};

}  // namespace credence
