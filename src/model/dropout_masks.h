#pragma once
// Inverted dropout masks, shared by the models' dropout forwards.
#include <ATen/ATen.h>
#include <fmt/format.h>

#include <vector>

#include "credence/core/error.h"
#include "credence/core/rng.h"

namespace credence {

/// Keep-masks drawn in call order from one CPU generator (so devices agree): [rows, width] per
/// call, or [sets, rows, width] for stacked parameter sets. With total_rows > 0, `h` holds rows
/// [row_offset, row_offset + N) of a batch of total_rows and gets those rows' masks of that batch.
struct DropoutMasks {
  double p;
  at::Generator gen;
  int64_t row_offset = 0, total_rows = 0;
  /// Masks keyed by `key` for `rows` rows at `row_offset` of `total_rows` (0: the rows are the
  /// batch); InvalidArgument for a rate outside [0, 1) or rows outside the batch.
  static DropoutMasks checked(double p, uint64_t key, int64_t row_offset, int64_t rows, int64_t total_rows) {
    if (!(p >= 0.0 && p < 1.0)) throw InvalidArgument(fmt::format("dropout rate must be in [0, 1), got {}", p));
    if (total_rows > 0 && (row_offset < 0 || row_offset + rows > total_rows))
      throw InvalidArgument(fmt::format("dropout rows [{}, {}) lie outside a batch of {}", row_offset,
                                        row_offset + rows, total_rows));
    return {p, cpu_generator(key), row_offset, total_rows};
  }
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
