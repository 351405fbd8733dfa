// Task families: seeded sinusoids and Cauchy bumps, and one task per group of a CSV file or UCI set.
#include "credence/data/tasks.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>

#include <cmath>
#include <map>

#include "credence/core/error.h"
#include "loaders.h"

namespace credence {
namespace {

using data_detail::derive_seed;
const at::TensorOptions kF64 = at::TensorOptions().dtype(at::kDouble);

// Sinusoids: y = slope x + amplitude sin(1.5 (x - phase)) + offset + noise, x ~ U(-5, 5).
// Cauchy bumps: y = amplitude / (1 + ((x - centre) / width)^2) + slope x + noise, x ~ U(-3, 3).
// Each task's coefficients come from its own stream.
TaskSet function_family(const Spec& spec, const DataOptions& options) {
  const bool cauchy = spec.body == "cauchy";
  spec.check_keys({"tasks", "points", "seed", "part", "noise"}, /*data_error=*/true);
  const long tasks = data_detail::spec_int(spec, "tasks", 20), points = data_detail::spec_int(spec, "points", 5);
  const long seed = data_detail::spec_int(spec, "seed", 0);
  const double noise = data_detail::spec_double(spec, "noise", 0.1);
  const std::string part = spec.get("part", "train");
  if (tasks < 1 || points < 1)
    throw DataError(fmt::format("spec '{}': tasks and points must be >= 1", spec.text));
  if (!std::isfinite(noise) || noise < 0)
    throw DataError(fmt::format("spec '{}': noise must be a finite number >= 0, got {}", spec.text, noise));
  if (part != "train" && part != "test")
    throw DataError(fmt::format("spec '{}': part '{}' is unknown (use part=train or part=test)", spec.text, part));
  TaskSet set;
  set.name = spec.text;
  for (long t = 0; t < tasks; ++t) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(
        derive_seed(derive_seed(static_cast<uint64_t>(seed), part == "test" ? 11 : 10), static_cast<uint64_t>(t)));
    at::Tensor x, y;
    if (cauchy) {
      auto u = at::rand({2}, gen, kF64), z = at::randn({2}, gen, kF64);
      const double amplitude = 1.0 + 2.0 * u[0].item<double>(), width = 0.3 + 0.7 * u[1].item<double>();
      const double centre = 0.5 * z[0].item<double>(), slope = 0.3 * z[1].item<double>();
      x = at::rand({points}, gen, kF64) * 6.0 - 3.0;
      y = amplitude / (1 + ((x - centre) / width).pow(2)) + slope * x;
    } else {
      const double amplitude = 0.7 + 0.6 * at::rand({1}, gen, kF64).item<double>();
      const double phase = 0.1 * at::randn({1}, gen, kF64).item<double>();
      const double slope = 0.5 + 0.2 * at::randn({1}, gen, kF64).item<double>();
      const double offset = 5.0 + 0.1 * at::randn({1}, gen, kF64).item<double>();
      x = at::rand({points}, gen, kF64) * 10.0 - 5.0;
      y = slope * x + amplitude * at::sin(1.5 * (x - phase)) + offset;
    }
    y = y + noise * at::randn({points}, gen, kF64);
    Dataset d;
    d.x = x.unsqueeze(1).to(options.dtype).contiguous();
    d.y = y.to(options.dtype).contiguous();
    d.task = Task::Regression;
    d.name = fmt::format("{}#{}", spec.text, t);
    set.tasks.push_back(std::move(d));
  }
  return set;
}

// The group column's index among the input columns (the columns other than the target).
int64_t group_feature(const std::string& path, const std::string& target, const std::string& group) {
  int64_t feature = 0;
  for (const auto& name : data_detail::csv_header(data_detail::read_lines(path, ""), path)) {
    if (name == target) continue;
    if (name == group) return feature;
    ++feature;
  }
  throw DataError(fmt::format("CSV file '{}': no group column '{}' (group= names the column whose values split "
                              "the rows into tasks)",
                              path, group));
}

// One task per value of input column `col`, which is dropped from the inputs.
TaskSet split_by_column(const Dataset& all, int64_t col, const std::string& group, const Spec& spec) {
  if (all.x.dim() != 2 || all.x.size(1) < 2)
    throw DataError(fmt::format("spec '{}': the group column must leave at least one input column", spec.text));
  if (col < 0 || col >= all.x.size(1))
    throw DataError(fmt::format("spec '{}': group column {} is out of range (the data have {} input columns)",
                                spec.text, col, all.x.size(1)));
  auto keys = all.x.select(1, col);
  std::vector<int64_t> keep;
  for (int64_t c = 0; c < all.x.size(1); ++c)
    if (c != col) keep.push_back(c);
  auto inputs = all.x.index_select(1, at::tensor(keep, at::kLong));
  auto values = std::get<0>(at::_unique(keys, /*sorted=*/true));
  TaskSet set;
  set.name = spec.text;
  for (int64_t g = 0; g < values.size(0); ++g) {
    auto rows = (keys == values[g]).nonzero().reshape({-1});
    Dataset d = all.subset(rows);
    d.x = inputs.index_select(0, rows).contiguous();
    d.name = fmt::format("{}#{}={}", spec.text, group, values[g].item<double>());
    set.tasks.push_back(std::move(d));
  }
  return set;
}

TaskSet grouped_csv(const Spec& spec, const DataOptions& options) {
  if (!spec.has("group"))
    throw DataError(fmt::format("spec '{}': a task family from a CSV file needs group=COLUMN", spec.text));
  const std::string group = spec.get("group", "");
  std::string rest;
  for (const auto& [k, v] : spec.query)
    if (k != "group") rest += fmt::format("{}{}={}", rest.empty() ? "?" : "&", k, v);
  auto all = load_data(fmt::format("csv:{}{}", spec.body, rest), options).fit;
  return split_by_column(all, group_feature(spec.body, spec.get("target", ""), group), group, spec);
}

// uci:DIR?group=K: every row (train and test of split 0), one task per value of input column K.
TaskSet grouped_uci(const Spec& spec, const DataOptions& options) {
  spec.check_keys({"group"}, /*data_error=*/true);
  if (!spec.has("group"))
    throw DataError(fmt::format("spec '{}': a task family from a UCI set needs group=K (an input column, from 0)",
                                spec.text));
  auto train = load_data(fmt::format("uci:{}?split=0&part=train", spec.body), options).fit;
  auto test = load_data(fmt::format("uci:{}?split=0&part=test", spec.body), options).fit;
  Dataset all = train;
  all.x = at::cat({train.x, test.x});
  all.y = at::cat({train.y, test.y});
  return split_by_column(all, data_detail::spec_int(spec, "group", 0), "column " + spec.get("group", ""), spec);
}

}  // namespace

TaskSet load_tasks(const std::string& text, const DataOptions& options) {
  Spec spec = Spec::parse(text);
  if (spec.scheme == "synthetic" && (spec.body == "sinusoid" || spec.body == "cauchy"))
    return function_family(spec, options);
  if (spec.scheme == "csv") return grouped_csv(spec, options);
  if (spec.scheme == "uci") return grouped_uci(spec, options);
  throw DataError(fmt::format("task spec '{}' is unknown (known: synthetic:sinusoid?tasks=T&points=N, synthetic:cauchy, "
                              "csv:PATH?target=Y&group=COLUMN, uci:DIR?group=K)",
                              text));
}

std::pair<Dataset, Dataset> split_context(const Dataset& task, int64_t context) {
  if (context < 1 || context >= task.size())
    throw InvalidArgument(fmt::format("task '{}' has {} rows: a context of {} must leave rows to judge on",
                                      task.name, task.size(), context));
  auto all = at::arange(task.size(), at::kLong);
  return {task.subset(all.narrow(0, 0, context)), task.subset(all.narrow(0, context, task.size() - context))};
}

Dataset pool_tasks(const TaskSet& set) {
  if (set.tasks.empty()) throw DataError(fmt::format("task family '{}' has no tasks", set.name));
  Dataset d = set.tasks.front();
  std::vector<torch::Tensor> xs, ys;
  for (const auto& t : set.tasks) xs.push_back(t.x), ys.push_back(t.y);
  d.x = at::cat(xs);
  d.y = at::cat(ys);
  d.name = set.name;
  return d;
}

}  // namespace credence
