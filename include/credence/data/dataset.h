#pragma once
/// Datasets and the --data spec loaders (fmnist, uci, csv, synthetic).
#include <torch/types.h>

#include <optional>
#include <string>
#include <vector>

namespace credence {

enum class Task { Regression, Classification };
const char* to_string(Task task);

/// Examples in memory, in original units (images scaled to [0, 1]).
struct Dataset {
  torch::Tensor x;           ///< [N, ...] floating (float32 or float64)
  torch::Tensor y;           ///< classification: int64 [N] in [0, num_classes); regression: floating [N]
  Task task = Task::Regression;
  int64_t num_classes = 0;   ///< classification only
  std::string name;          ///< the spec it came from
  bool standardize_inputs = true;  ///< tabular inputs are standardized for fitting; images are not

  int64_t size() const { return x.defined() ? x.size(0) : 0; }
  /// Shape of one input, e.g. {784} or {1, 28, 28}.
  std::vector<int64_t> input_shape() const;
  /// Rows `index` (int64 [K]) of this dataset, keeping every other field.
  Dataset subset(const torch::Tensor& index) const;
  Dataset to(torch::Device device) const;
};

/// The parts a spec yields: what methods fit on, plus optional validation and calibration
/// parts carved out of it (`holdout=val:0.1,cal:0.1`), never overlapping `fit`.
struct DataParts {
  Dataset fit;
  std::optional<Dataset> val;
  std::optional<Dataset> cal;
};

struct DataOptions {
  torch::Dtype dtype = torch::kFloat32;
};

/// Loads a --data spec. Throws DataError naming the problem (missing file, bad row with its line
/// number, NaN/inf, label out of range, empty split, unknown key) and what would work.
/// Known specs:
///   fmnist:train|test[?n=N&classes=A-B&shift=rotate:DEG|noise:SD]
///   uci:DIR?split=K&part=train|test
///   csv:PATH?target=NAME[&task=regression|classification&inputs=features|tokens&shape=CxHxW]
///   synthetic:sine|moons|linear|tokens[?n=N&seed=S&noise=SD&part=train|test&d=D&length=T&vocab=V]
/// Every spec also takes `holdout=val:F,cal:F` (fractions or counts) and `holdout_seed=S`.
DataParts load_data(const std::string& spec, const DataOptions& options = {});

/// Directory of Debian's dataset-fashion-mnist IDX files (override with CREDENCE_FMNIST_DIR).
std::string fmnist_dir();

}  // namespace credence
