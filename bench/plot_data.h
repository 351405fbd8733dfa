#pragma once
// CSV files of 1-D predictives and points, for the gnuplot scripts that draw the benchmarks' plots.
#include <ATen/ATen.h>

#include <fstream>
#include <string>
#include <vector>

#include "credence/data/dataset.h"

namespace credence::bench {

/// A header "x,NAME mean,NAME sd,..." then one row per grid point; `columns` holds the grid x
/// first, then a mean and an sd per name (each [n]).
inline void write_predictive_table(const std::string& path, const std::vector<std::string>& names,
                                   const std::vector<torch::Tensor>& columns) {
  std::ofstream out(path);
  out << "x";
  for (const auto& n : names) out << "," << n << " mean," << n << " sd";
  out << "\n";
  auto table = at::stack(columns, 1).to(at::kDouble);
  for (int64_t i = 0; i < table.size(0); ++i) {
    for (int64_t j = 0; j < table.size(1); ++j) out << (j ? "," : "") << table[i][j].item<double>();
    out << "\n";
  }
}

/// "x,y" rows of a dataset with one input.
inline void write_points(const std::string& path, const Dataset& d) {
  std::ofstream out(path);
  for (int64_t i = 0; i < d.size(); ++i) out << d.x[i][0].item<double>() << "," << d.y[i].item<double>() << "\n";
}

}  // namespace credence::bench
