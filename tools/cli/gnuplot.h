#pragma once
// Draws SVG plots by running gnuplot on a generated script (Debian package gnuplot-nox).
#include <string>
#include <vector>

namespace credence::cli {

/// NotSupported naming the package when `gnuplot` is not on PATH.
void require_gnuplot();

/// A gnuplot script under construction: inline data blocks, then commands.
class GnuplotScript {
 public:
  /// Starts with the svg terminal at this size and `out` as the output file.
  GnuplotScript(const std::string& out, int width = 640, int height = 400);
  /// Defines $name from columns of equal length (one row per index).
  void data(const std::string& name, const std::vector<std::vector<double>>& columns);
  void line(const std::string& command) { text_ += command + "\n"; }
  /// Runs gnuplot; IoError with its output when it fails or writes nothing.
  void render() const;

 private:
  std::string out_, text_;
};

/// `text` as a gnuplot single-quoted string literal.
std::string gp_quote(const std::string& text);

}  // namespace credence::cli
