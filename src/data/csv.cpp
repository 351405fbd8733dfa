// csv:PATH?target=NAME[&task=regression|classification&classes=C&shape=CxHxW]: a header row, then
// numbers; shape= makes each row's inputs an image.
#include <ATen/ATen.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>
#include <filesystem>
#include <set>

#include "credence/core/error.h"
#include "credence/core/files.h"
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

// One row's cells as RFC 4180 reads them: a field in double quotes may hold commas, and "" is a
// quote inside it. `error` is set for an unterminated quote or text after a closing quote.
std::vector<std::string> split_row(const std::string& line, std::string& error) {
  std::vector<std::string> cells(1);
  bool quoted = false, closed = false;
  for (size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (quoted) {
      if (c != '"') {
        cells.back() += c;
      } else if (i + 1 < line.size() && line[i + 1] == '"') {
        cells.back() += '"';
        ++i;
      } else {
        quoted = false;
        closed = true;
      }
    } else if (c == ',') {
      cells.emplace_back();
      closed = false;
    } else if (c == '"' && trim(cells.back()).empty() && !closed) {
      quoted = true;
      cells.back().clear();
    } else if (closed && c != ' ' && c != '\t' && c != '\r') {
      error = "text after a closing quote";
      return cells;
    } else {
      cells.back() += c;
    }
  }
  if (quoted) error = "a quote that is never closed (fields spanning lines are not supported)";
  return cells;
}

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

// Labels must code classes as 0..C-1: a model gets one output per value up to the largest, so
// codes such as {0, 1000000} would build a million-class model. Some absent classes are fine.
void check_label_coding(const std::vector<int64_t>& labels, int64_t max_label, const std::string& path,
                        const std::string& column) {
  std::set<int64_t> distinct(labels.begin(), labels.end());
  const int64_t classes = max_label + 1;
  if (static_cast<int64_t>(distinct.size()) * 2 >= classes) return;
  std::vector<int64_t> shown(distinct.begin(), distinct.end());
  const bool more = shown.size() > 8;
  if (more) shown.resize(8);
  throw DataError(fmt::format(
      "CSV file '{}' column '{}': the labels are {} distinct values ({}{}) but would make {} classes (0..{}); "
      "recode them as 0..{} (or give classes=C if the absent classes are meant)",
      path, column, distinct.size(), fmt::join(shown, ", "), more ? ", ..." : "", classes, max_label,
      distinct.size() - 1));
}

}  // namespace

std::vector<std::string> csv_header(const std::vector<std::string>& lines, const std::string& path, size_t* line) {
  size_t first = 0;
  while (first < lines.size() && trim(lines[first]).empty()) ++first;
  if (first == lines.size())
    throw DataError(fmt::format("CSV file '{}' is empty (it needs a header row)", path));
  std::string header_line = lines[first];
  if (header_line.rfind("\xEF\xBB\xBF", 0) == 0) header_line = header_line.substr(3);  // BOM
  std::vector<std::string> names;
  std::string row_error;
  for (const auto& cell : split_row(header_line, row_error)) names.push_back(unquote(cell));
  if (!row_error.empty())
    throw DataError(fmt::format("CSV file '{}' line {}: {}", path, first + 1, row_error));
  if (line) *line = first;
  return names;
}

Dataset load_csv(const Spec& spec, const DataOptions& options) {
  spec.check_keys(with_common_keys({"target", "task", "classes", "shape", "inputs"}), /*data_error=*/true);
  const std::string inputs = spec.get("inputs", "features");
  if (inputs != "features" && inputs != "tokens")
    throw DataError(fmt::format("spec '{}': inputs '{}' is unknown (use inputs=features, standardized, or "
                                "inputs=tokens, whole-number ids kept as they are)",
                                spec.text, inputs));
  if (inputs == "tokens" && spec.has("shape"))
    throw DataError(fmt::format("spec '{}': inputs=tokens and shape= do not go together", spec.text));
  const std::string path = spec.body;
  if (path.empty())
    throw DataError(fmt::format("spec '{}': no file given (e.g. 'csv:data.csv?target=y')",
                                spec.text));
  try {
    check_input_file(path, "CSV file");
  } catch (const IoError& e) {
    throw DataError(fmt::format("spec '{}': {}", spec.text, e.what()));
  }
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
  const auto names = csv_header(lines, path, &first);
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
  std::string row_error;
  for (size_t i = first + 1; i < lines.size(); ++i) {
    const size_t line = i + 1;
    if (trim(lines[i]).empty()) continue;
    auto cells = split_row(lines[i], row_error);
    if (!row_error.empty()) throw DataError(fmt::format("CSV file '{}' line {}: {}", path, line, row_error));
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

  if (classify && fixed_classes == 0) check_label_coding(labels, max_label, path, names[target_col]);

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
  d.standardize_inputs = inputs == "features";
  if (inputs == "tokens") {
    auto bad = (d.x != d.x.floor()) | (d.x < 0);
    if (bad.any().item<bool>()) {
      const int64_t row = bad.any(1).nonzero().select(1, 0)[0].item<int64_t>();
      throw DataError(fmt::format("CSV file '{}': data row {} holds an input that is not a token id (a whole number >= 0); "
                                  "inputs=tokens needs every input column to hold ids",
                                  path, row + 1));
    }
  }
  if (spec.has("shape")) {
    const std::string text = spec.get("shape", "");
    std::vector<int64_t> shape = {rows};
    int64_t size = 1;
    for (const auto& part : split(text, 'x')) {
      double v = 0;
      if (!parse_number(trim(part), v) || v < 1 || v != std::floor(v))
        throw DataError(fmt::format("spec '{}': shape '{}' must be C x H x W in whole numbers (e.g. shape=1x8x8)",
                                    spec.text, text));
      shape.push_back(static_cast<int64_t>(v));
      size *= shape.back();
    }
    if (shape.size() != 4 || size != cols - 1)
      throw DataError(fmt::format("spec '{}': shape '{}' must be CxHxW with C*H*W equal to the {} input columns",
                                  spec.text, text, cols - 1));
    d.x = d.x.view(shape);
  }
  return d;
}

}  // namespace credence::data_detail
