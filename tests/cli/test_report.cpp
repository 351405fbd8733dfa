// `credence compare --report`: the HTML page and its plots, rendered in headless Chromium; ranking,
// OOD metrics and the temperature-scaled MAP baseline.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

namespace fs = std::filesystem;

#include "cli_test.h"

namespace {

using namespace credence_cli_test;

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

/// The src of every <img> in `html`.
std::vector<std::string> image_sources(const std::string& html) {
  std::vector<std::string> out;
  std::regex img("<img[^>]*src=\"([^\"]+)\"");
  for (std::sregex_iterator it(html.begin(), html.end(), img), end; it != end; ++it) out.push_back((*it)[1]);
  return out;
}

// Test artifacts go next to the binary under test: <build>/test-artifacts.
fs::path artifact_dir() {
  auto dir = fs::path(CREDENCE_CLI).parent_path() / "test-artifacts";
  fs::create_directories(dir);
  return dir;
}

class Report : public TempDirTest {
 protected:

  std::string chromium(const std::string& args) {
    return "timeout 60 chromium --headless --no-sandbox --disable-gpu --disable-dev-shm-usage "
           "--user-data-dir='" + (root_ / "profile").string() + "' " + args;
  }

  /// Renders report/index.html: the page loads, every image exists, is non-empty and decodes,
  /// and a screenshot is kept as `artifact`. Returns the image sources.
  std::vector<std::string> render(const fs::path& report, const std::string& artifact) {
    if (shell("command -v chromium").code != 0) {
      ADD_FAILURE() << "chromium is not installed: run scripts/setup (it installs Debian's chromium "
                       "and gnuplot-nox)";
      return {};
    }
    const std::string html = read_file(report / "index.html");
    auto sources = image_sources(html);
    for (const auto& src : sources) {
      auto file = report / src;
      EXPECT_TRUE(fs::exists(file)) << src;
      if (fs::exists(file)) EXPECT_GT(fs::file_size(file), 200u) << src;
    }
    const std::string url = "file://" + fs::absolute(report / "index.html").string();
    auto dom = shell(chromium("--dump-dom '" + url + "'"));
    EXPECT_EQ(dom.code, 0) << dom.output;
    EXPECT_NE(dom.output.find("<h1>credence compare</h1>"), std::string::npos) << dom.output;
    EXPECT_NE(dom.output.find("<table>"), std::string::npos);
    // The browser decodes every image: a page with the same images records how many loaded.
    std::ofstream probe(report / "probe.html");
    probe << "<!DOCTYPE html><html><body>";
    for (const auto& src : sources) probe << "<img src=\"" << src << "\">";
    probe << "<script>window.onload = () => { const ok = [...document.images].filter("
             "i => i.complete && i.naturalWidth > 0).length; document.title = 'decoded ' + ok + '/' + "
             "document.images.length; };</script></body></html>";
    probe.close();
    auto decoded = shell(chromium("--virtual-time-budget=10000 --dump-dom 'file://" +
                                  fs::absolute(report / "probe.html").string() + "'"));
    std::string want = "decoded " + std::to_string(sources.size()) + "/" + std::to_string(sources.size());
    EXPECT_NE(decoded.output.find(want), std::string::npos) << "want '" << want << "' in\n" << decoded.output;
    fs::remove(report / "probe.html");
    auto png = artifact_dir() / artifact;
    fs::remove(png);
    auto shot = shell(chromium("--hide-scrollbars --window-size=1200,2400 --screenshot='" + png.string() + "' '" + url + "'"));
    EXPECT_EQ(shot.code, 0) << shot.output;
    EXPECT_TRUE(fs::exists(png)) << shot.output;
    if (fs::exists(png)) {
      EXPECT_GT(fs::file_size(png), 10000u);
      EXPECT_EQ(read_file(png).substr(1, 3), "PNG");
    }
    return sources;
  }

};

size_t count_prefix(const std::vector<std::string>& sources, const std::string& prefix) {
  size_t n = 0;
  for (const auto& s : sources) n += s.rfind(prefix, 0) == 0;
  return n;
}

TEST_F(Report, RegressionReportShowsCredibleBands) {
  auto report = root_ / "sine";
  auto r = run("compare -q --data 'synthetic:sine?n=300&holdout=cal:100' --test 'synthetic:sine?part=test&n=200' "
                    "--model mlp:16 --methods map,ensemble:members=2 --epochs 30 --report '" + report.string() + "'");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("recommended: "), std::string::npos) << r.output;
  // A single fit is told how to mix several; the ensemble already is a mixture.
  if (r.output.find("recommended: map (") != std::string::npos)
    EXPECT_NE(r.output.find("try ensemble:members=5"), std::string::npos) << r.output;
  else
    EXPECT_EQ(r.output.find("to improve on it"), std::string::npos) << r.output;
  auto sources = render(report, "report-regression.png");
  EXPECT_EQ(count_prefix(sources, "band_"), 2u);  // one band plot per method
  EXPECT_EQ(count_prefix(sources, "risk_coverage"), 1u);
}

TEST_F(Report, ClassificationReportWithOod) {
  auto report = root_ / "moons";
  auto json = (root_ / "moons.json").string();
  auto r = run("compare -q --data 'synthetic:moons?n=600&holdout=val:100,cal:150' "
                    "--test 'synthetic:moons?part=test&n=500' --ood 'synthetic:moons?noise=1.5&seed=9&n=300' "
                    "--model mlp:16 --methods map,ensemble:members=2 --epochs 20 --rank-by ood_auroc "
                    "--json '" + json + "' --report '" + report.string() + "'");
  ASSERT_EQ(r.code, 0) << r.output;
  auto sources = render(report, "report-classification.png");
  EXPECT_EQ(count_prefix(sources, "reliability"), 1u);
  EXPECT_EQ(count_prefix(sources, "risk_coverage"), 1u);
  EXPECT_EQ(count_prefix(sources, "ood_"), 3u);  // map, ensemble, map+temperature
  EXPECT_EQ(count_prefix(sources, "cost_quality"), 1u);
  // Under the reliability diagram: the examples per confidence bin, one row per method, summing to the test size.
  const std::string html = read_file(report / "index.html");
  EXPECT_NE(html.find("examples per confidence bin"), std::string::npos);
  auto row = html.find("<tr><td class=\"m\">map</td>", html.find("examples per confidence bin"));
  ASSERT_NE(row, std::string::npos);
  int total = 0;
  for (size_t at = html.find("<td>", row); at < html.find("</tr>", row); at = html.find("<td>", at + 1))
    total += std::stoi(html.substr(at + 4));
  EXPECT_EQ(total, 500);

  std::ifstream in(json);
  auto j = nlohmann::json::parse(in);
  EXPECT_EQ(j["rank_by"], "ood_auroc");
  ASSERT_EQ(j["results"].size(), 3u);
  std::vector<int> ranks;
  for (const auto& row : j["results"]) {
    for (const char* key : {"ood_auroc", "ood_aupr", "ood_fpr95", "ood_auroc_max_prob", "ood_auroc_mutual_info", "aurc"})
      ASSERT_TRUE(row.contains(key)) << key << " in " << row.dump();
    // Mutual information needs per-sample probabilities: absent for MAP, a number for the ensemble.
    EXPECT_EQ(row["ood_auroc_mutual_info"].is_null(), row["method"] != "ensemble:members=2") << row.dump();
    EXPECT_GE(row["ood_auroc"].get<double>(), 0.0);
    EXPECT_LE(row["ood_auroc"].get<double>(), 1.0);
    ranks.push_back(row["rank"].get<int>());
  }
  std::sort(ranks.begin(), ranks.end());
  EXPECT_EQ(ranks, (std::vector<int>{1, 2, 3}));
  const auto& scaled = j["results"][2];
  EXPECT_EQ(scaled["method"], "map+temperature");
  EXPECT_GT(scaled["temperature"].get<double>(), 0.0);
  // The best-ranked method is the one recommended.
  for (const auto& row : j["results"])
    if (row["rank"] == 1)
      EXPECT_NE(r.output.find("recommended: " + row["method"].get<std::string>() + " (ood_auroc"), std::string::npos)
          << r.output;
}

TEST_F(Report, BadRequestsAreRefusedBeforeFitting) {
  auto report = root_ / "full";
  fs::create_directories(report);
  std::ofstream(report / "keep.txt") << "x";
  auto base = std::string("compare -q --data synthetic:moons --test 'synthetic:moons?part=test' --methods map --epochs 1 ");
  auto expect_error = [](const Result& r, const std::string& part) {
    EXPECT_EQ(r.code, 1) << r.output;
    EXPECT_NE(r.output.find("credence: error: "), std::string::npos) << r.output;
    EXPECT_NE(r.output.find(part), std::string::npos) << "lacks '" << part << "': " << r.output;
  };
  expect_error(run(base + "--report '" + report.string() + "'"), "--force");
  EXPECT_TRUE(fs::exists(report / "keep.txt"));
  expect_error(run(base + "--rank-by nosuch"), "nosuch");
  expect_error(run(base + "--ood synthetic:sine"), "--ood");
  expect_error(run("compare -q --data synthetic:sine --test 'synthetic:sine?part=test' --methods map "
                        "--epochs 1 --ood synthetic:sine"),
               "classification");
}

}  // namespace
