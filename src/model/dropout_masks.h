#pragma once
// Inverted dropout masks, shared by the models' dropout forwards.
#include <ATen/ATen.h>

#include <vector>

namespace credence {

/// Keep-masks drawn in call order from one CPU generator (so devices agree): [rows, width] per
/// call, or [sets, rows, width] for stacked parameter sets. With total_rows > 0, `h` holds rows
/// [row_offset, row_offset + N) of a batch of total_rows and gets those rows' masks of that batch.
struct DropoutMasks {
  double p;
  at::Generator gen;
  int64_t row_offset = 0, total_rows = 0;
  at::Tensor apply(const at::Tensor& h, int64_t sets) {
    const int64_t rows = h.size(-2);
    std::vector<int64_t> shape = {total_rows > 0 ? total_rows : rows, h.size(-1)};
    if (sets > 0) shape.insert(shape.begin(), sets);
    auto keep = at::empty(shape, at::TensorOptions().dtype(h.scalar_type())).bernoulli_(1.0 - p, gen);
    if (total_rows > 0) keep = keep.narrow(-2, row_offset, rows);
    return h * keep.div_(1.0 - p).to(h.device());
  }
};

}  // namespace credence
