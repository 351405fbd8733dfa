#pragma once
// Data-parallel gradient sums that start while the backward pass still runs, as PyTorch's
// DistributedDataParallel does. The parameters enter the network as the model's blocks
// (BlockForward), each with a gradient hook; blocks are grouped into buckets of about
// kBucketBytes from the last (whose gradient backward produces first), and a bucket's all-reduce
// starts once all its blocks' gradients are in. Buckets start strictly in order, so every rank
// issues the same collectives in the same sequence whatever order the gradients arrive in.
#include <torch/types.h>

#include <functional>
#include <optional>
#include <vector>

#include "credence/methods/method.h"

namespace credence {

class BucketedReduction {
 public:
  static constexpr int64_t kBucketBytes = 4 << 20;

  /// Whether this run's steps overlap, decided at its first step: several processes sharding each
  /// minibatch, a model with a per-block forward on the CPU, and ranks on several machines (or
  /// CREDENCE_BUCKET_BYTES set: on one machine the sums compete with backward for the same cores).
  bool active(const Problem& problem, const Batch& batch);

  /// model->forward(x, theta) for theta [P] or [S, P]; when active, through hooked blocks:
  /// autograd then gives theta no gradient of its own, and finish() writes the reduced one.
  torch::Tensor forward(const Problem& problem, const Batch& batch, const torch::Tensor& theta);

  /// In an active run, after backward: starts the buckets whose gradients did not all arrive
  /// through the hooks (a forward that did not go through forward(), e.g. with dropout masks),
  /// waits for every bucket and writes the sums into `grad` (defined, theta's shape): the
  /// whole-batch gradient, as reduce_gradients gives.
  void finish(const Problem& problem, const Batch& batch, torch::Tensor& grad);

  /// For a method's report, in an active run: the bucket count, and the seconds finish() spent
  /// waiting for sums over all steps (the communication not hidden). Empty otherwise.
  nlohmann::json report() const {
    if (!active_.value_or(false)) return nlohmann::json::object();
    return {{"gradient_buckets", buckets_.size()}, {"gradient_wait_seconds", wait_seconds_}};
  }

 private:
  struct Bucket {
    int64_t lo = 0, len = 0;   // range of theta's last dimension
    std::vector<size_t> blocks;
    size_t arrived = 0;
    torch::Tensor sum;         // [len] or [S, len]
    std::function<void()> wait;
  };
  /// CREDENCE_BUCKET_BYTES when set (InvalidArgument for a bad value); a bucket holds at least
  /// one block.
  static std::optional<int64_t> bucket_bytes_given();
  void build(const Problem& problem, const torch::Tensor& theta);
  void prepare(const Problem& problem, const Batch& batch, const torch::Tensor& theta);
  void arrive(size_t block, const torch::Tensor& grad);
  void start_ready(const Problem& problem);

  std::optional<bool> active_;
  std::vector<Bucket> buckets_;
  std::vector<int64_t> offsets_, numels_;
  std::vector<size_t> bucket_of_;
  std::vector<bool> arrived_;
  size_t next_ = 0;  // the next bucket to start
  bool armed_ = false;   // prepare() ran for this step
  bool hooked_ = false;  // and forward() hooked its blocks
  double share_ = 1.0, wait_seconds_ = 0.0;
  const Problem* problem_ = nullptr;
  std::vector<int64_t> shape_;
};

}  // namespace credence
