#pragma once
// Small literal tensors and predictives for the metric tests.
#include <ATen/ATen.h>

#include <vector>

#include "credence/eval/predictive.h"

namespace credence {

/// float64 values, reshaped to `shape` (1-D when empty).
inline torch::Tensor f64(std::vector<double> v, std::vector<int64_t> shape = {}) {
  auto t = at::tensor(at::ArrayRef<double>(v), at::kDouble);
  return shape.empty() ? t : t.reshape(shape);
}
inline torch::Tensor labels(std::vector<int64_t> v) { return at::tensor(at::ArrayRef<int64_t>(v), at::kLong); }

/// A classification predictive with probabilities `v` for `n` examples, [n, v.size() / n].
inline Predictive probs(std::vector<double> v, int64_t n) {
  Predictive p;
  p.task = Task::Classification;
  p.probs = f64(std::move(v), {n, -1});
  return p;
}

// The 4-example, 3-class case used throughout:
//   row  probs               y  argmax  conf  correct  p[y]
//   0    [0.7,  0.2,  0.1]   0  0       0.7   yes      0.7
//   1    [0.1,  0.6,  0.3]   2  1       0.6   no       0.3
//   2    [0.25, 0.25, 0.5]   2  2       0.5   yes      0.5
//   3    [0.3,  0.4,  0.3]   1  1       0.4   yes      0.4
inline Predictive four_by_three() { return probs({0.7, 0.2, 0.1, 0.1, 0.6, 0.3, 0.25, 0.25, 0.5, 0.3, 0.4, 0.3}, 4); }
inline torch::Tensor four_labels() { return labels({0, 2, 2, 1}); }

}  // namespace credence
