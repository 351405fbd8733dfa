#pragma once
/// Families of related tasks, for learning a prior from them (credence meta-fit): one dataset per
/// task, all in original units with the same inputs and target.
#include <string>
#include <utility>
#include <vector>

#include "credence/data/dataset.h"

namespace credence {

struct TaskSet {
  std::vector<Dataset> tasks;
  std::string name;  ///< the spec it came from
};

/// Loads a task-family spec. Known specs:
///   synthetic:sinusoid?tasks=T&points=N[&seed=S&part=train|test&noise=SD]  sinusoids with random
///     amplitude, phase, slope and offset (the environment of Rothfuss et al. 2021), x in [-5, 5];
///     part=test draws other tasks than part=train for the same seed
///   synthetic:cauchy?... (same keys)  Cauchy-shaped bumps amplitude / (1 + ((x - centre) / width)^2)
///     + slope x with random amplitude, centre, width and slope, x in [-3, 3]
///   csv:PATH?target=Y&group=COLUMN  one task per value of COLUMN (which is not an input)
///   uci:DIR?group=K  every row of a UCI set, one task per value of input column K (from 0), which
///     is then not an input
/// DataError naming the problem otherwise.
TaskSet load_tasks(const std::string& spec, const DataOptions& options = {});

/// A task's first `context` rows (what a fit sees) and the rest (where it is judged).
std::pair<Dataset, Dataset> split_context(const Dataset& task, int64_t context);

/// All tasks' rows in one dataset.
Dataset pool_tasks(const TaskSet& set);

}  // namespace credence
