#pragma once
// `compare --rank-by KEY`: orders methods by one result key and recommends the best.
#include <string>
#include <vector>

#include "common.h"

namespace credence::cli {

struct Criterion {
  enum Direction { Lower, Higher, Nominal };
  std::string key;
  Direction direction = Lower;
  double target = 0;  ///< Nominal: the coverage the key should reach
  /// Smaller is better: the value itself, its negative, or its distance to the target.
  double badness(double value) const;
  std::string describe() const;  ///< e.g. "lower is better"
};

/// The criterion of a result key; InvalidArgument naming the known keys for any other.
Criterion criterion_for(const std::string& key, double level);
/// Sets row["rank"] (1 = best) on the rows with a number under c.key; false when no row has one.
bool rank_rows(std::vector<Row>& rows, const Criterion& c);
/// One line per ranked method with its cost (fit + predict seconds, relative to MAP's when there
/// is a MAP row), then "recommended: ...": the best row whose chains converged (R-hat <= 1.05 or
/// no R-hat); a row with R-hat above that is marked NOT CONVERGED and never recommended. When the
/// recommended method is one fit of a network, the line also names the spec that mixes five fits
/// of it (ensemble for map, multiswag for swag, METHOD:members=5 otherwise).
std::vector<std::string> ranking_lines(const std::vector<Row>& rows, const Criterion& c);

}  // namespace credence::cli
