// Gradient reduction for data-parallel steps. A method's loss is a mean over its local rows plus
// terms (prior, KL) computed alike on every rank; scaling each rank's gradient by its share of the
// rows and summing gives the whole-batch gradient exactly, shards of unequal size included.
#include <ATen/ATen.h>

#include "credence/core/distributed.h"
#include "credence/methods/method.h"

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

}  // namespace credence
