#pragma once
// `compare --report DIR`: a self-contained HTML page (index.html plus SVG plots drawn by gnuplot).
#include <string>
#include <vector>

#include "common.h"
#include "credence/eval/calibration.h"
#include "credence/eval/selective.h"

namespace credence::cli {

/// What the plots of one method need.
struct MethodCurves {
  std::string method;
  ReliabilityDiagram reliability;       ///< classification
  RiskCoverage risk;                    ///< classification: 0/1 error; regression: squared error
  std::vector<double> ood_in, ood_out;  ///< entropy scores, when --ood is given
  std::vector<double> grid_x, grid_mean, grid_lo, grid_hi;  ///< 1-D regression bands
};

struct ReportData {
  std::vector<std::pair<std::string, std::string>> facts;  ///< data, test, model, ... shown on top
  Task task = Task::Classification;
  double level = 0.9;           ///< nominal level of the bands
  std::string rank_by, recommendation;
  std::vector<Row> rows;
  std::vector<MethodCurves> methods;
  std::vector<double> train_x, train_y, test_x, test_y;  ///< 1-D regression points
};

/// IoError when `dir` exists, is not empty and `force` is not set (checked before any fitting).
void check_report_dir(const std::string& dir, bool force);
/// Writes dir/index.html and the plots it shows.
void write_report(const std::string& dir, const ReportData& data);

/// One line of a curves plot: the mean over runs at each x, with one standard error either side.
struct Curve {
  std::string label;
  std::vector<double> x, mean, se;
};
/// Mean and standard error at each position of equally long runs (`runs[r][t]`).
Curve mean_curve(const std::string& label, const std::vector<double>& x, const std::vector<std::vector<double>>& runs);

/// The report of a sequential loop (`optimize`, `active`): facts, a table (first row: the
/// column names) and one plot of curves with their standard-error bands.
void write_curves_report(const std::string& dir, const std::string& title,
                         const std::vector<std::pair<std::string, std::string>>& facts,
                         const std::vector<std::vector<std::string>>& table, const std::string& xlabel,
                         const std::string& ylabel, const std::vector<Curve>& curves);

}  // namespace credence::cli
