#include "gnuplot.h"

#include <fmt/format.h>
#include <sys/wait.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "credence/core/error.h"

namespace credence::cli {

void require_gnuplot() {
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0)
    throw NotSupported("--report draws its plots with gnuplot, which is not installed "
                       "(install the Debian package gnuplot-nox, e.g. run scripts/setup)");
}

std::string gp_quote(const std::string& text) {
  std::string out = "'";
  for (char c : text) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out + "'";
}

GnuplotScript::GnuplotScript(const std::string& out, int width, int height) : out_(out) {
  // noenhanced: method names such as "ensemble:members=5" or "map_t" are shown as written.
  line(fmt::format("set terminal svg size {},{} noenhanced font 'sans,12' background rgb 'white'", width, height));
  line("set output " + gp_quote(out));
  line("set grid lc rgb '#dddddd'");
  line("set key noautotitle");
}

void GnuplotScript::data(const std::string& name, const std::vector<std::vector<double>>& columns) {
  text_ += "$" + name + " << EOD\n";
  size_t n = columns.empty() ? 0 : columns[0].size();
  for (size_t i = 0; i < n; ++i) {
    for (size_t c = 0; c < columns.size(); ++c) {
      double v = columns[c][i];
      text_ += std::isfinite(v) ? fmt::format("{:.6g}", v) : std::string("NaN");
      text_ += c + 1 < columns.size() ? " " : "\n";
    }
  }
  if (n == 0) text_ += "NaN\n";  // an empty block would make `plot` fail
  text_ += "EOD\n";
}

void GnuplotScript::render() const {
  std::string script = out_ + ".gp";
  {
    std::ofstream f(script);
    if (!f) throw IoError(fmt::format("cannot write '{}'", script));
    f << text_ << "unset output\n";
  }
  std::string cmd = "gnuplot " + gp_quote(script) + " 2>&1";
  std::string output;
  FILE* pipe = popen(cmd.c_str(), "r");
  if (!pipe) throw IoError("cannot run gnuplot (install the Debian package gnuplot-nox)");
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) output.append(buf, n);
  int status = pclose(pipe);
  std::error_code ec;
  bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0 && std::filesystem::file_size(out_, ec) > 0 && !ec;
  if (!ok)
    throw IoError(fmt::format("gnuplot failed to draw '{}' (script kept in '{}'): {}", out_, script,
                              output.substr(0, 400)));
  std::filesystem::remove(script, ec);
}

}  // namespace credence::cli
