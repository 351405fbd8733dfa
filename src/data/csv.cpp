// csv:PATH?target=NAME[&task=regression|classification&classes=C]: a header row, then numbers.
#include <ATen/ATen.h>
#include <fmt/format.h>

#include <cmath>
#include <filesystem>

#include "credence/core/error.h"
#include "loaders.h"

namespace credence::data_detail {
namespace {

std::string unquote(std::string s) {
  s = trim(s);
  if (s.size() >= 2 && ((s.front() == '"' && s.back() == '"') ||
                        (s.front() == '\'' && s.back() == '\'')))
    s = s.substr(1, s.size() - 2);
  return s;
}

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

}  // namespace

Dataset load_csv(const Spec& spec, const DataOptions& options) {
  spec.check_keys(with_common_keys({"target", "task", "classes"}), /*data_error=*/true);
  const std::string path = spec.body;
  if (path.empty())
    throw DataError(fmt::format("spec '{}': no file given (e.g. 'csv:data.csv?target=y')",
                                spec.text));
  if (!std::filesystem::is_regular_file(path))
    throw DataError(fmt::format("spec '{}': CSV file '{}' does not exist", spec.text, path));
  if (!spec.has("target"))
    throw DataError(fmt::format("spec '{}': no target column given (add '?target=NAME')",
                                spec.text));
  const std::string target = spec.get("target", "");
  const std::string task_name = spec.get("task", "regression");
  if (task_name != "regression" && task_name != "classification")
    throw DataError(fmt::format("spec '{}': task '{}' is unknown (use task=regression or "
                                "task=classification)",
                                spec.text, task_name));
  const bool classify = task_name == "classification";
  if (spec.has("classes") && !classify)
    throw DataError(fmt::format("spec '{}': classes= only applies to task=classification",
                                spec.text));
  const long fixed_classes = spec_int(spec, "classes", 0);
  if (spec.has("classes") && fixed_classes < 1)
    throw DataError(fmt::format("spec '{}': classes must be >= 1, got {}", spec.text,
                                fixed_classes));

  auto lines = read_lines(path, "");
  size_t first = 0;
  while (first < lines.size() && trim(lines[first]).empty()) ++first;
  if (first == lines.size())
    throw DataError(fmt::format("CSV file '{}' is empty (it needs a header row)", path));
  std::string header_line = lines[first];
  if (header_line.rfind("\xEF\xBB\xBF", 0) == 0) header_line = header_line.substr(3);  // BOM
  std::vector<std::string> names;
  for (const auto& cell : split(header_line, ',')) names.push_back(unquote(cell));
  const int64_t cols = static_cast<int64_t>(names.size());

  int64_t target_col = -1;
  for (int64_t c = 0; c < cols; ++c) {
    if (names[c] != target) continue;
    if (target_col >= 0)
      throw DataError(fmt::format("CSV file '{}': target column '{}' appears more than once",
                                  path, target));
    target_col = c;
  }
  if (target_col < 0)
    throw DataError(fmt::format("CSV file '{}': no column named '{}' (available columns: {})",
                                path, target, join(names)));
  if (cols < 2)
    throw DataError(fmt::format("CSV file '{}': only the target column '{}', no input columns",
                                path, target));

  std::vector<double> x, y;
  std::vector<int64_t> labels;
  int64_t rows = 0, max_label = -1;
  for (size_t i = first + 1; i < lines.size(); ++i) {
    const size_t line = i + 1;
    if (trim(lines[i]).empty()) continue;
    auto cells = split(lines[i], ',');
    if (static_cast<int64_t>(cells.size()) != cols)
      throw DataError(fmt::format("CSV file '{}' line {}: ragged row with {} cells, the header "
                                  "has {}",
                                  path, line, cells.size(), cols));
    for (int64_t c = 0; c < cols; ++c) {
      const std::string cell = unquote(cells[c]);
      double v = 0;
      if (!parse_number(cell, v))
        throw DataError(fmt::format("CSV file '{}' line {} column '{}': '{}' is not a number",
                                    path, line, names[c], cell));
      if (!std::isfinite(v))
        throw DataError(fmt::format("CSV file '{}' line {} column '{}': value '{}' is NaN or inf",
                                    path, line, names[c], cell));
      if (c != target_col) {
        x.push_back(v);
      } else if (!classify) {
        y.push_back(v);
      } else {
        if (v != std::floor(v) || v < 0 || v > 1e9)
          throw DataError(fmt::format(
              "CSV file '{}' line {} column '{}': label '{}' is not a whole number >= 0 "
              "(classification needs integer-coded labels 0..C-1, C up to 1e9)",
              path, line, names[c], cell));
        if (fixed_classes > 0 && v >= static_cast<double>(fixed_classes))
          throw DataError(fmt::format(
              "CSV file '{}' line {} column '{}': label out of range: {} is not in 0..{} "
              "(classes={})",
              path, line, names[c], cell, fixed_classes - 1, fixed_classes));
        labels.push_back(static_cast<int64_t>(v));
        max_label = std::max(max_label, labels.back());
      }
    }
    ++rows;
  }
  if (rows == 0)
    throw DataError(fmt::format("CSV file '{}': empty split: no data rows after the header",
                                path));

  Dataset d;
  d.x = make_tensor(x, {rows, cols - 1}, options.dtype);
  if (classify) {
    d.y = make_labels(labels);
    d.task = Task::Classification;
    d.num_classes = fixed_classes > 0 ? fixed_classes : max_label + 1;
  } else {
    d.y = make_tensor(y, {rows}, options.dtype);
    d.task = Task::Regression;
  }
  d.standardize_inputs = true;
  return d;
}

}  // namespace credence::data_detail
