#include "report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>

#include "credence/core/error.h"
#include "credence/core/files.h"
#include "gnuplot.h"
#include "ranking.h"

namespace credence::cli {
namespace fs = std::filesystem;
namespace {

std::string html_escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else if (c == '&') out += "&amp;";
    else if (c == '"') out += "&quot;";
    else out += c;
  }
  return out;
}

// At most `max_points` evenly spaced entries (the last kept): a curve per distinct confidence
// can have one point per test example.
std::vector<std::vector<double>> thin(const std::vector<double>& a, const std::vector<double>& b,
                                      size_t max_points = 400) {
  std::vector<std::vector<double>> out(2);
  size_t n = a.size(), step = std::max<size_t>(1, n / max_points);
  for (size_t i = 0; i < n; i += step) out[0].push_back(a[i]), out[1].push_back(b[i]);
  if (n > 0 && (n - 1) % step != 0) out[0].push_back(a[n - 1]), out[1].push_back(b[n - 1]);
  return out;
}

void plot_reliability(const std::string& path, const ReportData& d) {
  GnuplotScript gp(path, 560, 480);
  std::string plot = "plot x with lines dt 2 lc rgb '#888888' title 'perfectly calibrated'";
  for (size_t m = 0; m < d.methods.size(); ++m) {
    const auto& r = d.methods[m].reliability;
    std::vector<std::vector<double>> cols(2);
    for (size_t b = 0; b < r.count.size(); ++b)
      if (r.count[b] > 0) cols[0].push_back(r.mean_confidence[b]), cols[1].push_back(r.accuracy[b]);
    if (cols[0].empty()) continue;
    gp.data(fmt::format("m{}", m), cols);
    plot += fmt::format(", $m{} using 1:2 with linespoints lt {} pt 7 ps 0.6 title {}", m, m + 1,
                        gp_quote(d.methods[m].method));
  }
  gp.line("set xrange [0:1]\nset yrange [0:1]\nset key left top");
  gp.line("set xlabel 'confidence (top-label probability)'\nset ylabel 'accuracy'");
  gp.line(plot);
  gp.render();
}

// Examples per confidence bin of each method: how much each point of the diagram rests on.
std::string bin_counts_html(const ReportData& d) {
  if (d.methods.empty() || d.methods[0].reliability.edges.size() < 2) return "";
  const auto& edges = d.methods[0].reliability.edges;
  std::string h = "<p class=\"note\">examples per confidence bin</p>\n<div class=\"scroll\"><table>\n<tr><th>method</th>";
  for (size_t b = 0; b + 1 < edges.size(); ++b) h += fmt::format("<th>{:.2f}&ndash;{:.2f}</th>", edges[b], edges[b + 1]);
  h += "</tr>\n";
  for (const auto& m : d.methods) {
    h += "<tr><td class=\"m\">" + html_escape(m.method) + "</td>";
    for (int64_t c : m.reliability.count) h += fmt::format("<td>{}</td>", c);
    h += "</tr>\n";
  }
  return h + "</table></div>\n";
}

// Each method's NLL against what it cost (fit + predict seconds, log scale): which method for a budget.
bool plot_cost_quality(const std::string& path, const ReportData& d) {
  std::vector<std::vector<double>> cols(2);
  std::string labels;
  for (const auto& row : d.rows) {
    auto nll = row.find("nll");
    if (nll == row.end() || !nll->second.is_number()) continue;
    double seconds = row.count("fit_seconds") ? row.at("fit_seconds").get<double>() : 0.0;
    if (row.count("predict_seconds")) seconds += row.at("predict_seconds").get<double>();
    const double x = std::max(seconds, 1e-3), y = nll->second.get<double>();
    if (!std::isfinite(y)) continue;
    cols[0].push_back(x);
    cols[1].push_back(y);
    labels += fmt::format("set label {} at {},{} offset 0.6,0.4 font ',9'\n", gp_quote(row.at("method").get<std::string>()),
                          x, y);
  }
  if (cols[0].empty()) return false;
  GnuplotScript gp(path, 600, 420);
  gp.data("c", cols);
  gp.line("set logscale x\nset xlabel 'fit + predict seconds (log scale)'\nset ylabel 'test NLL (lower is better)'");
  gp.line("set offsets graph 0.08, graph 0.25, graph 0.08, graph 0.08\nunset key");
  gp.line(labels + "plot $c using 1:2 with points pt 7 ps 1.1 lc rgb '#3182bd'");
  gp.render();
  return true;
}

void plot_risk_coverage(const std::string& path, const ReportData& d) {
  GnuplotScript gp(path, 640, 420);
  std::string plot;
  for (size_t m = 0; m < d.methods.size(); ++m) {
    const auto& rc = d.methods[m].risk;
    if (rc.coverage.empty()) continue;
    gp.data(fmt::format("m{}", m), thin(rc.coverage, rc.risk));
    // Points too: a predictive with one variance for all inputs has a one-point curve.
    plot += fmt::format("{}$m{} using 1:2 with linespoints lt {} lw 2 pt 7 ps 0.6 pi 40 title {}",
                        plot.empty() ? "plot " : ", ", m, m + 1, gp_quote(d.methods[m].method));
  }
  gp.line("set xrange [0:1]\nset key left top");
  gp.line("set xlabel 'coverage (fraction answered, most confident first)'");
  gp.line(d.task == Task::Classification ? "set ylabel 'risk (error rate)'"
                                         : "set ylabel 'risk (mean squared error)'");
  gp.line(plot);
  gp.render();
}

// Fraction of each score set per bin, on bins shared by both sets.
void plot_ood(const std::string& path, const MethodCurves& m) {
  constexpr int kBins = 30;
  double hi = 1e-12;
  for (double v : m.ood_in) hi = std::max(hi, v);
  for (double v : m.ood_out) hi = std::max(hi, v);
  auto hist = [&](const std::vector<double>& s) {
    std::vector<double> f(kBins, 0.0);
    for (double v : s) f[std::min(kBins - 1, static_cast<int>(v / hi * kBins))] += 1.0 / s.size();
    return f;
  };
  std::vector<double> centre(kBins);
  for (int b = 0; b < kBins; ++b) centre[b] = (b + 0.5) * hi / kBins;
  GnuplotScript gp(path, 480, 320);
  gp.data("h", {centre, hist(m.ood_in), hist(m.ood_out)});
  gp.line(fmt::format("set title {}\nset xlabel 'predictive entropy (nats)'\nset ylabel 'fraction'",
                      gp_quote(m.method)));
  gp.line("set xrange [0:*]");
  gp.line(fmt::format("set boxwidth {}\nset style fill transparent solid 0.45 noborder\nset key right top", hi / kBins));
  gp.line("plot $h using 1:2 with boxes lc rgb '#3182bd' title 'in-distribution (test)', "
          "$h using 1:3 with boxes lc rgb '#e6550d' title 'out-of-distribution'");
  gp.render();
}

void plot_band(const std::string& path, const MethodCurves& m, const ReportData& d) {
  GnuplotScript gp(path, 520, 360);
  gp.data("band", {m.grid_x, m.grid_mean, m.grid_lo, m.grid_hi});
  gp.data("train", {d.train_x, d.train_y});
  gp.data("test", {d.test_x, d.test_y});
  gp.line(fmt::format("set title {}\nset xlabel 'x'\nset ylabel 'y'\nset key left top", gp_quote(m.method)));
  gp.line(fmt::format(
      "plot $band using 1:3:4 with filledcurves fc rgb '#9ecae1' fs transparent solid 0.6 title '{:g}% credible band', "
      "$band using 1:2 with lines lw 2 lc rgb '#08519c' title 'predictive mean', "
      "$train using 1:2 with points pt 7 ps 0.35 lc rgb '#444444' title 'training data', "
      "$test using 1:2 with points pt 6 ps 0.45 lc rgb '#e6550d' title 'test points'",
      100 * d.level));
  gp.render();
}

std::string cell(const nlohmann::json& v) {
  if (v.is_null()) return "&ndash;";
  if (v.is_number_float()) return fmt::format("{:.4g}", v.get<double>());
  if (v.is_string()) return html_escape(v.get<std::string>());
  return html_escape(v.dump());
}

// Metric table, best value of each column with a known direction in bold.
std::string table_html(const ReportData& d) {
  // Quality first, cost last; keys not listed (ood_*, diagnostics) in between.
  const std::vector<std::string> first = {"rank", "method", "accuracy", "nll", "ece", "mce", "brier", "aurc",
                                          "rmse", "crps", "coverage_90", "conformal_coverage",
                                          "conformal_set_size", "credible_coverage", "credible_set_size"};
  const std::vector<std::string> last = {"temperature", "fit_seconds", "predict_seconds"};
  auto present = [&](const std::string& k) {
    return std::any_of(d.rows.begin(), d.rows.end(), [&](const Row& r) { return r.count(k) > 0; });
  };
  std::vector<std::string> cols = {"rank", "method"};
  for (const auto& k : first)
    if (k != "rank" && k != "method" && present(k)) cols.push_back(k);
  for (const auto& row : d.rows)
    for (const auto& [k, v] : row)
      if (std::find(cols.begin(), cols.end(), k) == cols.end() &&
          std::find(last.begin(), last.end(), k) == last.end())
        cols.push_back(k);
  for (const auto& k : last)
    if (present(k)) cols.push_back(k);
  std::string h = "<div class=\"scroll\"><table>\n<tr>";
  for (const auto& c : cols) h += "<th>" + html_escape(c) + "</th>";
  h += "</tr>\n";
  std::vector<std::optional<Criterion>> crit(cols.size());
  std::vector<std::optional<double>> best(cols.size());  // smallest badness per column
  for (size_t i = 2; i < cols.size(); ++i) {
    try {
      crit[i] = criterion_for(cols[i], d.level);
    } catch (const InvalidArgument&) {
      continue;  // e.g. a fitted temperature: no better or worse
    }
    for (const auto& row : d.rows) {
      auto it = row.find(cols[i]);
      if (it == row.end() || !it->second.is_number()) continue;
      double b = crit[i]->badness(it->second.get<double>());
      if (std::isfinite(b) && (!best[i] || b < *best[i])) best[i] = b;
    }
  }
  // Best-ranked first; unranked rows keep their order at the end.
  std::vector<const Row*> order;
  for (const auto& row : d.rows) order.push_back(&row);
  auto rank = [](const Row* r) { return r->count("rank") ? r->at("rank").get<int64_t>() : INT64_MAX; };
  std::stable_sort(order.begin(), order.end(), [&](const Row* a, const Row* b) { return rank(a) < rank(b); });
  for (const Row* rp : order) {
    const Row& row = *rp;
    h += "<tr>";
    for (size_t i = 0; i < cols.size(); ++i) {
      auto it = row.find(cols[i]);
      std::string text = it == row.end() ? "&ndash;" : cell(it->second);
      bool bold = false;
      if (best[i] && it != row.end() && it->second.is_number())
        bold = crit[i]->badness(it->second.get<double>()) == *best[i];
      h += i == 1 ? "<td class=\"m\">" : "<td>";
      h += bold ? "<b>" + text + "</b>" : text;
      h += "</td>";
    }
    h += "</tr>\n";
  }
  return h + "</table></div>\n";
}

std::string img(const std::string& file, const std::string& alt) {
  return fmt::format("<img src=\"{}\" alt=\"{}\">\n", file, html_escape(alt));
}

const char* kStyle = R"(body{font-family:sans-serif;margin:24px;max-width:1400px;color:#222}
table{border-collapse:collapse;font-size:12px}.scroll{overflow-x:auto}th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#f0f0f0}td.m{text-align:left;white-space:nowrap}.rec{font-size:17px;background:#eef6ee;padding:8px}
dl{display:grid;grid-template-columns:max-content auto;gap:2px 12px;font-size:13px}dt{font-weight:bold}
img{margin:4px;border:1px solid #eee}.note{font-size:12px;color:#555})";

}  // namespace

void check_report_dir(const std::string& dir, bool force) {
  std::error_code ec;
  if (fs::exists(dir, ec) && !fs::is_directory(dir, ec))
    throw IoError(fmt::format("--report '{}' is a file; give a directory", dir));
  if (!force && fs::is_directory(dir, ec) && !fs::is_empty(dir, ec))
    throw IoError(fmt::format("--report directory '{}' is not empty; choose another or pass --force to write into it", dir));
}

void write_report(const std::string& dir, const ReportData& d) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw IoError(fmt::format("cannot create --report directory '{}': {}", dir, ec.message()));
  auto at = [&](const std::string& f) { return (fs::path(dir) / f).string(); };
  std::string body;
  body += "<h2>Metrics</h2>\n" + table_html(d);
  body += fmt::format("<p class=\"note\">rank: by {}; bold: the best value of each metric. Seconds are "
                      "wall time on this machine; post-hoc methods include their MAP fit.</p>\n",
                      html_escape(d.rank_by));
  if (d.task == Task::Classification) {
    plot_reliability(at("reliability.svg"), d);
    body += "<h2>Reliability diagrams</h2>\n" + img("reliability.svg", "reliability diagram") + bin_counts_html(d);
  }
  if (plot_cost_quality(at("cost_quality.svg"), d))
    body += "<h2>Cost and quality</h2>\n" + img("cost_quality.svg", "NLL against fit + predict seconds");
  plot_risk_coverage(at("risk_coverage.svg"), d);
  body += "<h2>Risk&ndash;coverage curves</h2>\n" + img("risk_coverage.svg", "risk-coverage curves");
  std::string ood, band;
  for (size_t m = 0; m < d.methods.size(); ++m) {
    const auto& mc = d.methods[m];
    if (!mc.ood_in.empty() && !mc.ood_out.empty()) {
      auto file = fmt::format("ood_{}.svg", m);
      plot_ood(at(file), mc);
      ood += img(file, "OOD entropy histogram: " + mc.method);
    }
    if (!mc.grid_x.empty()) {
      auto file = fmt::format("band_{}.svg", m);
      plot_band(at(file), mc, d);
      band += img(file, "predictive band: " + mc.method);
    }
  }
  if (!ood.empty()) body += "<h2>OOD score histograms (entropy)</h2>\n" + ood;
  if (!band.empty())
    body += fmt::format("<h2>Predictive mean and {:g}% credible band</h2>\n", 100 * d.level) + band;

  std::string head = "<dl>\n";
  for (const auto& [k, v] : d.facts) head += "<dt>" + html_escape(k) + "</dt><dd>" + html_escape(v) + "</dd>\n";
  head += "</dl>\n";
  if (!d.recommendation.empty()) head += "<p class=\"rec\">" + html_escape(d.recommendation) + "</p>\n";
  write_file_atomically(at("index.html"), /*overwrite=*/true, [&](std::ostream& out) {
    out << "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
      << "<title>credence compare</title>\n<style>" << kStyle << "</style>\n</head>\n<body>\n"
        << "<h1>credence compare</h1>\n" << head << body << "</body>\n</html>\n";
  });
}

Curve mean_curve(const std::string& label, const std::vector<double>& x, const std::vector<std::vector<double>>& runs) {
  Curve c{label, x, {}, {}};
  for (size_t t = 0; t < x.size(); ++t) {
    std::vector<double> at_t;
    for (const auto& r : runs) at_t.push_back(r.at(t));
    const auto [m, se] = mean_and_se(at_t);
    c.mean.push_back(m);
    c.se.push_back(se);
  }
  return c;
}

void write_curves_report(const std::string& dir, const std::string& title,
                         const std::vector<std::pair<std::string, std::string>>& facts,
                         const std::vector<std::vector<std::string>>& table, const std::string& xlabel,
                         const std::string& ylabel, const std::vector<Curve>& curves) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw IoError(fmt::format("cannot create --report directory '{}': {}", dir, ec.message()));
  GnuplotScript gp((fs::path(dir) / "curves.svg").string(), 720, 440);
  std::string plot;
  for (size_t i = 0; i < curves.size(); ++i) {
    const auto& c = curves[i];
    std::vector<double> lo, hi;
    for (size_t t = 0; t < c.mean.size(); ++t) lo.push_back(c.mean[t] - c.se[t]), hi.push_back(c.mean[t] + c.se[t]);
    gp.data(fmt::format("c{}", i), {c.x, c.mean, lo, hi});
    plot += fmt::format("{}$c{} using 1:3:4 with filledcurves lc {} fs transparent solid 0.15 notitle, "
                        "$c{} using 1:2 with lines lw 2 lc {} title {}",
                        plot.empty() ? "plot " : ", ", i, i + 1, i, i + 1, gp_quote(c.label));
  }
  gp.line("set key outside right\nset grid\nset xlabel " + gp_quote(xlabel) + "\nset ylabel " + gp_quote(ylabel));
  gp.line(plot);
  gp.render();
  std::string head = "<dl>\n";
  for (const auto& [k, v] : facts) head += "<dt>" + html_escape(k) + "</dt><dd>" + html_escape(v) + "</dd>\n";
  head += "</dl>\n";
  std::string rows = "<div class=\"scroll\"><table>\n";
  for (size_t r = 0; r < table.size(); ++r) {
    rows += "<tr>";
    for (size_t c = 0; c < table[r].size(); ++c) {
      const char* tag = r == 0 ? "th" : c == 0 ? "td class=\"m\"" : "td";
      rows += fmt::format("<{}>{}</{}>", tag, html_escape(table[r][c]), r == 0 ? "th" : "td");
    }
    rows += "</tr>\n";
  }
  rows += "</table></div>\n";
  write_file_atomically((fs::path(dir) / "index.html").string(), /*overwrite=*/true, [&](std::ostream& out) {
    out << "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>" << html_escape(title)
        << "</title>\n<style>" << kStyle << "</style>\n</head>\n<body>\n<h1>" << html_escape(title) << "</h1>\n"
        << head << rows << "<p class=\"note\">mean and standard error over seeds</p>\n"
        << img("curves.svg", ylabel + " against " + xlabel) << "</body>\n</html>\n";
  });
}

}  // namespace credence::cli
