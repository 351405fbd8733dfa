// `credence decide` end to end: a refer action on two moons (CSV columns, JSON keys, totals that
// match the rows), an interval cost on a regression, and bad cost files.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "cli_test.h"

namespace {

using namespace credence_cli_test;

std::vector<std::vector<std::string>> read_csv(const std::string& file) {
  std::ifstream in(file);
  std::vector<std::vector<std::string>> rows;
  for (std::string line; std::getline(in, line);) {
    std::vector<std::string> cells;
    std::istringstream row(line);
    for (std::string cell; std::getline(row, cell, ',');) cells.push_back(cell);
    rows.push_back(cells);
  }
  return rows;
}

class Decide : public TempDirTest {
 protected:
  std::string write(const std::string& name, const std::string& text) const {
    std::ofstream(path(name)) << text;
    return path(name);
  }
  std::string fit(const std::string& data, const std::string& name) {
    auto r = run("fit -q --data " + data + " --model mlp:16 --epochs 5 --out '" + path(name) + "'");
    EXPECT_EQ(r.code, 0) << r.output;
    return path(name);
  }
};

TEST_F(Decide, ReferActionOnMoons) {
  auto post = fit("synthetic:moons", "moons.crd");
  auto costs = write("costs.json", R"({"classes": 2, "error_cost": 10, "actions": [{"name": "refer", "cost": 1}]})");
  auto csv = path("d.csv"), json = path("d.json");
  auto args = "decide --posterior '" + post + "' --data 'synthetic:moons?part=test' --costs '" + costs +
              "' --baseline '" + post + "' --out '" + csv + "' --json '" + json + "'";
  auto r = run(args);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("realized_total"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("actions (map): 0 "), std::string::npos) << r.output;

  auto rows = read_csv(csv);
  ASSERT_GT(rows.size(), 10u);
  EXPECT_EQ(rows[0], (std::vector<std::string>{"truth", "action", "expected_cost", "realized_cost", "baseline_action",
                                               "baseline_expected_cost", "baseline_realized_cost"}));
  double realized_sum = 0;
  for (size_t i = 1; i < rows.size(); ++i) {
    ASSERT_EQ(rows[i].size(), 7u);
    const auto &truth = rows[i][0], &action = rows[i][1];
    double expected = std::stod(rows[i][2]), realized = std::stod(rows[i][3]);
    EXPECT_TRUE(action == "0" || action == "1" || action == "refer") << action;
    EXPECT_LE(expected, 1.0 + 1e-9);  // referring caps the expected cost
    EXPECT_EQ(realized, action == "refer" ? 1.0 : action == truth ? 0.0 : 10.0) << i;
    EXPECT_EQ(rows[i][1], rows[i][4]);  // the baseline is the same posterior here
    realized_sum += realized;
  }

  std::ifstream in(json);
  auto j = nlohmann::json::parse(in);
  const int64_t n = static_cast<int64_t>(rows.size()) - 1;
  EXPECT_EQ(j["inputs"], n);
  for (const char* key : {"posterior", "data", "costs", "baseline"}) EXPECT_TRUE(j.contains(key)) << key;
  ASSERT_EQ(j["results"].size(), 2u);
  EXPECT_EQ(j["results"][0]["role"], "posterior");
  EXPECT_EQ(j["results"][1]["role"], "baseline");
  for (const auto& row : j["results"]) {
    for (const char* key : {"method", "expected_total", "expected_mean", "realized_total", "realized_mean", "actions"})
      EXPECT_TRUE(row.contains(key)) << key << " in " << row.dump();
    EXPECT_NEAR(row["realized_total"].get<double>(), realized_sum, 1e-6);
    EXPECT_NEAR(row["realized_mean"].get<double>(), realized_sum / n, 1e-9);
    EXPECT_EQ(row["actions"]["0"].get<int64_t>() + row["actions"]["1"].get<int64_t>() +
                  row["actions"]["refer"].get<int64_t>(),
              n);
  }
  // Existing outputs are kept without --force.
  auto again = run(args);
  EXPECT_EQ(again.code, 1) << again.output;
  EXPECT_NE(again.output.find("--force"), std::string::npos) << again.output;
  EXPECT_EQ(run(args + " --force").code, 0);
}

TEST_F(Decide, IntervalCostOnRegression) {
  auto post = fit("synthetic:sine", "sine.crd");
  auto costs = write("interval.json", R"({"type": "interval", "width_cost": 1, "miss_cost": 20})");
  auto csv = path("i.csv"), json = path("i.json");
  auto r = run("decide -q --posterior '" + post + "' --data 'synthetic:sine?part=test&n=50' --costs '" + costs +
               "' --out '" + csv + "' --json '" + json + "'");
  ASSERT_EQ(r.code, 0) << r.output;
  auto rows = read_csv(csv);
  ASSERT_EQ(rows.size(), 51u);
  EXPECT_EQ(rows[0], (std::vector<std::string>{"truth", "lower", "upper", "expected_cost", "realized_cost"}));
  for (size_t i = 1; i < rows.size(); ++i) EXPECT_LT(std::stod(rows[i][1]), std::stod(rows[i][2])) << i;
  std::ifstream in(json);
  auto row = nlohmann::json::parse(in)["results"][0];
  for (const char* key : {"coverage", "mean_width", "realized_total", "expected_total"})
    EXPECT_TRUE(row.contains(key)) << key << " in " << row.dump();
}

TEST_F(Decide, BadCostFilesGiveOneLineErrors) {
  auto post = fit("synthetic:moons", "moons.crd");
  auto decide = [&](const std::string& costs) {
    return run("decide -q --posterior '" + post + "' --data 'synthetic:moons?part=test' --costs '" + costs + "'");
  };
  auto expect_error = [&](const Result& r, const std::string& part) {
    EXPECT_EQ(r.code, 1) << r.output;
    EXPECT_EQ(r.output.rfind("credence: error: ", 0), 0u) << r.output;
    EXPECT_NE(r.output.find(part), std::string::npos) << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
  };
  expect_error(decide(write("three.json", R"({"classes": 3, "error_cost": 10})")), "the model predicts 2 classes");
  expect_error(decide(write("neg.json", R"({"classes": 2, "error_cost": -1})")), ">= 0");
  expect_error(decide(write("key.json", R"({"classes": 2, "refer": 1})")), "unknown key 'refer'");
  expect_error(decide(write("reg.json", R"({"type": "pinball", "under": 1, "over": 1})")), "classifier");
  expect_error(decide(path("missing.json")), "missing.json");
}

}  // namespace
