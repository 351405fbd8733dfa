#include "credence/eval/predictive.h"

#include <ATen/ATen.h>

namespace credence {

namespace {

torch::Tensor moved(const torch::Tensor& t, torch::Device device) {
  return t.defined() ? t.to(device) : t;
}

}  // namespace

int64_t Predictive::size() const {
  if (task == Task::Classification) {
    if (probs.defined()) return probs.dim() >= 1 ? probs.size(0) : 0;
    if (sample_probs.defined()) return sample_probs.dim() >= 2 ? sample_probs.size(1) : 0;
    return 0;
  }
  if (mean.defined()) return mean.dim() >= 1 ? mean.size(0) : 0;
  if (sample_mean.defined()) return sample_mean.dim() >= 2 ? sample_mean.size(1) : 0;
  return 0;
}

int64_t Predictive::num_samples() const {
  const torch::Tensor& samples = task == Task::Classification ? sample_probs : sample_mean;
  if (samples.defined() && samples.dim() >= 1) return samples.size(0);
  return 1;
}

Predictive Predictive::to(torch::Device device) const {
  Predictive out;
  out.task = task;
  out.probs = moved(probs, device);
  out.sample_probs = moved(sample_probs, device);
  out.mean = moved(mean, device);
  out.var = moved(var, device);
  out.sample_mean = moved(sample_mean, device);
  out.sample_var = moved(sample_var, device);
  out.weights = moved(weights, device);
  return out;
}

}  // namespace credence
