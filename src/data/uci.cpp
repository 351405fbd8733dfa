// uci:DIR?split=K&part=train|test: the standard UCI regression splits (data.txt + index files).
#include <ATen/ATen.h>
#include <fmt/format.h>

#include <cmath>
#include <filesystem>
#include <sstream>

#include "credence/core/error.h"
#include "loaders.h"

namespace credence::data_detail {
namespace {

// A file of whole numbers (one or more per line, whitespace separated), e.g. index_train_0.txt.
std::vector<int64_t> read_indices(const std::string& path, int64_t limit, const char* what) {
  std::vector<int64_t> out;
  auto lines = read_lines(path, "every UCI set directory needs it");
  for (size_t i = 0; i < lines.size(); ++i) {
    std::istringstream tokens(lines[i]);
    std::string token;
    while (tokens >> token) {
      double v = 0;
      if (!parse_number(token, v) || !std::isfinite(v) || v != std::floor(v) || v < 0)
        throw DataError(fmt::format("'{}' line {}: '{}' is not a non-negative whole number",
                                    path, i + 1, token));
      if (limit >= 0 && v >= static_cast<double>(limit))
        throw DataError(fmt::format("'{}' line {}: {} {} is out of range (must be < {})", path,
                                    i + 1, what, token, limit));
      out.push_back(static_cast<int64_t>(v));
    }
  }
  return out;
}

struct Table {
  std::vector<double> values;  // row-major
  int64_t rows = 0, cols = 0;
};

Table read_table(const std::string& path) {
  Table t;
  auto lines = read_lines(path, "every UCI set directory needs data.txt");
  for (size_t i = 0; i < lines.size(); ++i) {
    std::istringstream tokens(lines[i]);
    std::string token;
    int64_t cols = 0;
    while (tokens >> token) {
      double v = 0;
      if (!parse_number(token, v))
        throw DataError(fmt::format("'{}' line {} column {}: '{}' is not a number", path, i + 1,
                                    cols + 1, token));
      if (!std::isfinite(v))
        throw DataError(fmt::format("'{}' line {} column {}: value '{}' is NaN or inf", path,
                                    i + 1, cols + 1, token));
      t.values.push_back(v);
      ++cols;
    }
    if (cols == 0) continue;  // blank line
    if (t.rows == 0) t.cols = cols;
    if (cols != t.cols)
      throw DataError(fmt::format("'{}' line {}: ragged row with {} values, expected {}", path,
                                  i + 1, cols, t.cols));
    ++t.rows;
  }
  if (t.rows == 0) throw DataError(fmt::format("'{}' has no rows", path));
  return t;
}

}  // namespace

Dataset load_uci(const Spec& spec, const DataOptions& options) {
  spec.check_keys(with_common_keys({"split", "part"}), /*data_error=*/true);
  const std::string dir = spec.body;
  if (dir.empty() || !std::filesystem::is_directory(dir))
    throw DataError(fmt::format(
        "spec '{}': UCI directory '{}' does not exist (it should hold data.txt, "
        "index_features.txt, index_target.txt, index_train_K.txt, ...; e.g. "
        "'uci:data/uci/yacht?split=0')",
        spec.text, dir));
  const std::string part = spec.get("part", "train");
  if (part != "train" && part != "test")
    throw DataError(fmt::format("spec '{}': part '{}' is unknown (use part=train or part=test)",
                                spec.text, part));
  const long k = spec_int(spec, "split", 0);
  const std::string splits_path = dir + "/n_splits.txt";
  if (std::filesystem::exists(splits_path)) {
    auto n_splits = read_indices(splits_path, -1, "n_splits");
    if (n_splits.size() != 1)
      throw DataError(fmt::format("'{}' must hold exactly one number", splits_path));
    if (k < 0 || k >= n_splits[0])
      throw DataError(fmt::format("spec '{}': split {} is out of range: '{}' says n_splits = {} "
                                  "(use split=0..{})",
                                  spec.text, k, splits_path, n_splits[0], n_splits[0] - 1));
  } else if (k < 0) {
    throw DataError(fmt::format("spec '{}': split must be >= 0, got {}", spec.text, k));
  }

  Table table = read_table(dir + "/data.txt");
  auto features = read_indices(dir + "/index_features.txt", table.cols, "feature column");
  auto target = read_indices(dir + "/index_target.txt", table.cols, "target column");
  if (features.empty())
    throw DataError(fmt::format("'{}/index_features.txt' lists no columns", dir));
  if (target.size() != 1)
    throw DataError(fmt::format("'{}/index_target.txt' must list exactly one column", dir));
  const std::string index_path = fmt::format("{}/index_{}_{}.txt", dir, part, k);
  if (!std::filesystem::exists(index_path))
    throw DataError(fmt::format("spec '{}': split file '{}' is missing (is split={} valid for "
                                "this set?)",
                                spec.text, index_path, k));
  auto rows = read_indices(index_path, table.rows, "row index");
  if (rows.empty())
    throw DataError(fmt::format("spec '{}': empty split: '{}' lists no rows", spec.text,
                                index_path));

  at::Tensor all = make_tensor(table.values, {table.rows, table.cols}, at::kDouble);
  at::Tensor sel = all.index_select(0, make_labels(rows));
  Dataset d;
  d.x = sel.index_select(1, make_labels(features)).to(options.dtype).contiguous();
  d.y = sel.select(1, target[0]).to(options.dtype).contiguous();
  d.task = Task::Regression;
  d.standardize_inputs = true;
  return d;
}

}  // namespace credence::data_detail
