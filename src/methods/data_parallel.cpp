// Gradient reduction for data-parallel steps. A method's loss is a mean over its local rows plus
// terms (prior, KL) computed alike on every rank; scaling each rank's gradient by its share of the
// rows and summing gives the whole-batch gradient exactly, shards of unequal size included.
#include <ATen/ATen.h>

#include <fmt/format.h>

#include <chrono>
#include <cstdlib>
#include <optional>

#include "bucketed_reduction.h"
#include "credence/core/distributed.h"
#include "credence/core/error.h"
#include "credence/methods/method.h"
#include "credence/model/model.h"

namespace credence {
namespace {
double share(const Batch& batch) {
  // y: [B], or [M, B] for stacked members
  return static_cast<double>(batch.y.size(-1)) / static_cast<double>(batch.global_rows);
}
}  // namespace

void reduce_gradients(const Problem& problem, const Batch& batch, const std::vector<torch::Tensor>& grads) {
  if (!problem.comm || batch.global_rows == 0) return;
  std::vector<torch::Tensor> defined;
  const double w = share(batch);
  for (const auto& g : grads)
    if (g.defined()) defined.push_back(g.mul_(w));
  problem.comm->all_reduce_sum(defined);
}

void reduce_gradients(const Problem& problem, const Batch& batch, const TensorMap& state) {
  std::vector<torch::Tensor> grads;
  for (const auto& [name, t] : state) grads.push_back(t.grad());
  reduce_gradients(problem, batch, grads);
}

double reduce_mean(const Problem& problem, const Batch& batch, double local_mean) {
  if (!problem.comm || batch.global_rows == 0) return local_mean;
  auto v = at::full({1}, local_mean * share(batch), at::kDouble);
  problem.comm->all_reduce_sum({v});
  return v.item<double>();
}

std::pair<int64_t, int64_t> owned_units(const Problem& problem, int64_t units) {
  if (!problem.comm) return {0, units};
  const int64_t rank = problem.comm->rank(), ranks = problem.comm->world_size();
  return {units * rank / ranks, units * (rank + 1) / ranks};
}

torch::Tensor gather_units(const Problem& problem, const torch::Tensor& local, int64_t first, int64_t units) {
  if (!problem.comm) return local;
  auto shape = local.sizes().vec();
  shape[0] = units;
  // Zeros outside this rank's rows, so that the sum over ranks is the gather.
  auto all = at::zeros(shape, local.options());
  all.narrow(0, first, local.size(0)).copy_(local);
  problem.comm->all_reduce_sum({all});
  return all;
}

std::optional<int64_t> BucketedReduction::bucket_bytes_given() {
  const char* text = std::getenv("CREDENCE_BUCKET_BYTES");
  if (!text || !*text) return std::nullopt;
  char* end = nullptr;
  const long long bytes = std::strtoll(text, &end, 10);
  if (*end != '\0' || bytes < 1)
    throw InvalidArgument(fmt::format("CREDENCE_BUCKET_BYTES must be a whole number of bytes >= 1, got '{}' (unset "
                                      "it for the default {})", text, kBucketBytes));
  return bytes;
}

bool BucketedReduction::active(const Problem& problem, const Batch& batch) {
  if (!active_) {
    active_ = problem.comm && problem.comm->world_size() > 1 && batch.global_rows > 0 &&
              problem.model->find<BlockForward>() != nullptr && problem.model->device().is_cpu() &&
              // On one machine the sums run on the cores the backward pass needs, so starting them
              // early hides nothing and adds copies and collectives: the buckets are for ranks on
              // several machines, or when CREDENCE_BUCKET_BYTES asks for them.
              (!problem.comm->on_one_machine() || bucket_bytes_given());
  }
  return *active_;
}

void BucketedReduction::build(const Problem& problem, const torch::Tensor& theta) {
  problem_ = &problem;
  shape_ = theta.sizes().vec();
  const auto& blocks = problem.model->layout().blocks;
  offsets_.clear();
  numels_.clear();
  for (const auto& b : blocks) {
    offsets_.push_back(b.offset);
    numels_.push_back(b.numel);
  }
  buckets_.clear();
  bucket_of_.assign(blocks.size(), 0);
  const int64_t cap = bucket_bytes_given().value_or(kBucketBytes) / static_cast<int64_t>(theta.element_size() * (theta.dim() == 2 ? theta.size(0) : 1));
  for (size_t i = blocks.size(); i-- > 0;) {  // from the last block: backward reaches it first
    if (buckets_.empty() || (buckets_.back().len > 0 && buckets_.back().len + numels_[i] > cap)) buckets_.emplace_back();
    auto& bucket = buckets_.back();
    bucket.blocks.push_back(i);
    bucket.lo = offsets_[i];  // blocks are contiguous in theta, so the bucket is one range
    bucket.len += numels_[i];
    bucket_of_[i] = buckets_.size() - 1;
  }
  for (auto& bucket : buckets_) {
    auto shape = shape_;
    shape.back() = bucket.len;
    bucket.sum = at::empty(shape, theta.options().requires_grad(false));
  }
}

void BucketedReduction::prepare(const Problem& problem, const Batch& batch, const torch::Tensor& theta) {
  if (buckets_.empty() || theta.sizes().vec() != shape_) build(problem, theta);
  share_ = share(batch);
  next_ = 0;
  arrived_.assign(offsets_.size(), false);
  for (auto& bucket : buckets_) bucket.arrived = 0;
  armed_ = true;
  hooked_ = false;
}

torch::Tensor BucketedReduction::forward(const Problem& problem, const Batch& batch, const torch::Tensor& theta) {
  if (!active(problem, batch)) return problem.model->forward(batch.x, theta);
  prepare(problem, batch, theta);
  hooked_ = true;
  // Each block a leaf of its own: a hook on a view of theta would fire only when the view's
  // backward node runs, after every block's gradient is in. theta gets its gradient in finish().
  std::vector<torch::Tensor> parts;
  for (size_t i = 0; i < numels_.size(); ++i) {
    parts.push_back(theta.detach().narrow(-1, offsets_[i], numels_[i]).requires_grad_(theta.requires_grad()));
    if (theta.requires_grad()) parts.back().register_hook([this, i](const torch::Tensor& g) { arrive(i, g); });
  }
  return problem.model->find<BlockForward>()->forward_blocks(batch.x, parts, nullptr);
}

void BucketedReduction::arrive(size_t block, const torch::Tensor& grad) {
  auto& bucket = buckets_[bucket_of_[block]];
  at::NoGradGuard no_grad;
  bucket.sum.narrow(-1, offsets_[block] - bucket.lo, numels_[block]).copy_(grad).mul_(share_);
  arrived_[block] = true;
  ++bucket.arrived;
  start_ready(*problem_);
}

void BucketedReduction::start_ready(const Problem& problem) {
  while (next_ < buckets_.size() && buckets_[next_].arrived == buckets_[next_].blocks.size()) {
    auto& bucket = buckets_[next_++];
    bucket.wait = problem.comm->start_all_reduce_sum(bucket.sum);
  }
}

void BucketedReduction::finish(const Problem& problem, const Batch& batch, torch::Tensor& grad) {
  at::NoGradGuard no_grad;
  if (!armed_) prepare(problem, batch, grad);  // this step's forward did not go through forward()
  armed_ = false;
  for (size_t b = next_; b < buckets_.size(); ++b) {
    auto& bucket = buckets_[b];
    for (size_t i : bucket.blocks) {
      if (arrived_[i]) continue;
      // Through forward(), a block no hook saw has no gradient; otherwise autograd put it in grad.
      auto part = bucket.sum.narrow(-1, offsets_[i] - bucket.lo, numels_[i]);
      if (hooked_)
        part.zero_();
      else
        part.copy_(grad.narrow(-1, offsets_[i], numels_[i])).mul_(share_);
      arrived_[i] = true;
      ++bucket.arrived;
    }
  }
  start_ready(problem);
  const auto start = std::chrono::steady_clock::now();
  for (auto& bucket : buckets_) bucket.wait();
  wait_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  for (auto& bucket : buckets_) grad.narrow(-1, bucket.lo, bucket.len).copy_(bucket.sum);
}

}  // namespace credence
