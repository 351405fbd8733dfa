// credence optimize and credence active end to end: runs, resumes, asks from a file, refuses.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "cli_test.h"

namespace {

using namespace credence_cli_test;

class Sequential : public TempDirTest {
 protected:
  void expect_error(const std::string& args, const std::string& part) {
    auto r = run(args);
    EXPECT_EQ(r.code, 1) << args << "\n" << r.output;
    auto lines = lines_of(r.output);
    ASSERT_EQ(lines.size(), 1u) << args << "\n" << r.output;
    EXPECT_NE(lines[0].find(part), std::string::npos) << "lacks '" << part << "': " << lines[0];
  }
};

TEST_F(Sequential, OptimizeRunsAndResumesFromItsState) {
  const std::string common = "optimize --objective branin --initial 4 --seed 2 -q ";
  auto straight = path("straight.json");
  auto r = run(common + "--budget 9 --json '" + straight + "'");
  ASSERT_EQ(r.code, 0) << r.output;
  auto all = read_json(straight)["runs"][0];
  ASSERT_EQ(all["evaluations"].size(), 9u);
  double best = 1e300;
  for (const auto& e : all["evaluations"]) {
    best = std::min(best, e["y"].get<double>());
    EXPECT_DOUBLE_EQ(e["best"].get<double>(), best);
  }
  EXPECT_DOUBLE_EQ(all["regret"].get<double>(), best - 0.39788735772973816);

  auto state = path("state.json"), tail = path("tail.json");
  r = run(common + "--budget 6 --state '" + state + "'");
  ASSERT_EQ(r.code, 0) << r.output;
  expect_error(common + "--budget 6 --state '" + state + "'", "exists");  // never replaced unasked
  r = run(common + "--budget 9 --state '" + state + "' --resume --json '" + tail + "'");
  ASSERT_EQ(r.code, 0) << r.output;
  auto resumed = read_json(tail)["runs"][0]["evaluations"];
  ASSERT_EQ(resumed.size(), 3u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(resumed[i]["x"], all["evaluations"][6 + i]["x"]) << "evaluation " << 6 + i;
}

TEST_F(Sequential, OptimizeAsksFromAnObservationsFileAndRunsACommand) {
  auto obs = path("obs.csv");
  {
    std::ofstream f(obs);
    f << "temperature,pressure,yield\n0.1,0.2,3.0\n0.5,0.5,1.0\n0.9,0.1,2.5\n0.3,0.8,1.8\n0.7,0.7,1.2\n";
  }
  const std::string ask = "optimize --observations '" + obs + "' --bounds 0:1,0:1 --batch 2 --initial 3 -q";
  auto r = run(ask);
  ASSERT_EQ(r.code, 0) << r.output;
  auto lines = lines_of(r.output);
  ASSERT_EQ(lines.size(), 3u) << r.output;
  EXPECT_EQ(lines[0], "temperature,pressure");
  for (int i = 1; i < 3; ++i) {
    double a = 0, b = 0;
    ASSERT_EQ(std::sscanf(lines[i].c_str(), "%lf,%lf", &a, &b), 2) << lines[i];
    EXPECT_TRUE(a >= 0 && a <= 1 && b >= 0 && b <= 1) << lines[i];
  }
  EXPECT_EQ(run(ask).output, r.output) << "the same file and seed ask for the same points";
  expect_error("optimize --observations '" + obs + "' --bounds 0:1", "header has 3 columns");

  auto script = path("objective.sh");
  {
    std::ofstream f(script);
    f << "#!/bin/sh\necho \"($1 - 0.3)^2 + ($2 - 0.6)^2\" | bc -l 2>/dev/null || "
         "awk -v a=$1 -v b=$2 'BEGIN { print (a - 0.3)^2 + (b - 0.6)^2 }'\n";
  }
  auto out = path("command.json");
  r = run("optimize --command 'sh " + script + "' --bounds 0:1,0:1 --budget 8 --initial 5 -q --json '" + out + "'");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_LT(read_json(out)["runs"][0]["best_value"].get<double>(), 0.1);
  expect_error("optimize --command false --bounds 0:1 --budget 2 -q", "exit status 1");
  expect_error("optimize --command 'echo hello' --bounds 0:1 --budget 2 -q", "must be one number");
  expect_error("optimize --command 'echo 1' --budget 2", "--bounds");
  expect_error("optimize --objective sphere:2 --budget 2", "unknown objective");
  expect_error("optimize --objective branin --bounds 0:1,0:1", "own box");
}

TEST_F(Sequential, ActiveLearningWritesALearningCurve) {
  auto out = path("active.json");
  auto r = run("active --pool 'synthetic:moons?n=200&seed=1' --test 'synthetic:moons?n=100&seed=2' --model mlp:8 "
               "--method ensemble:members=2 --epochs 10 --initial 6 --batch 4 --budget 14 -q --json '" + out + "'");
  ASSERT_EQ(r.code, 0) << r.output;
  auto rounds = read_json(out)["runs"][0]["rounds"];
  ASSERT_EQ(rounds.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(rounds[i]["labels"].get<int>(), 6 + 4 * i);
    EXPECT_GE(rounds[i]["accuracy"].get<double>(), 0.0);
  }
  expect_error("active --pool synthetic:moons --test synthetic:moons --method map --acquisition bald --initial 4 "
               "--budget 8 --epochs 2 -q",
               "needs a predictive with weight draws");
}

TEST_F(Sequential, RowsAndSeedsMakeAReport) {
  if (shell("command -v gnuplot").code != 0) GTEST_SKIP() << "gnuplot-nox is not installed";
  auto out = path("runs.json"), dir = path("report");
  auto r = run("optimize --objective branin --method gp,ensemble:members=2 --acquisition ei,thompson --seeds 2 "
               "--budget 7 --initial 5 --steps 50 -q --json '" + out + "' --report '" + dir + "'");
  ASSERT_EQ(r.code, 0) << r.output;
  auto runs = read_json(out)["runs"];
  ASSERT_EQ(runs.size(), 8u);  // 2 surrogates x 2 acquisitions x 2 seeds
  EXPECT_EQ(runs[1]["seed"].get<int>(), 1);
  EXPECT_EQ(runs[2]["acquisition"].get<std::string>(), "thompson");
  EXPECT_TRUE(std::filesystem::exists(dir + "/index.html"));
  EXPECT_TRUE(std::filesystem::exists(dir + "/curves.svg"));
  r = run("active --pool 'synthetic:moons?n=120&seed=1' --test 'synthetic:moons?n=60&seed=2' --model mlp:8 "
          "--method ensemble:members=2 --acquisition bald,random --seeds 2 --epochs 5 --initial 4 --batch 4 "
          "--budget 8 -q --report '" + dir + "2'");
  ASSERT_EQ(r.code, 0) << r.output;
  std::ifstream page(dir + "2/index.html");
  std::string html((std::istreambuf_iterator<char>(page)), std::istreambuf_iterator<char>());
  EXPECT_NE(html.find("ensemble:members=2"), std::string::npos);
  EXPECT_NE(html.find("final accuracy"), std::string::npos);
  expect_error("optimize --objective branin --method gp,laplace --state '" + path("s.json") + "' -q", "one run");
  expect_error("optimize --objective branin --acquisition ei,pi -q", "'pi' is not one of");
}

TEST_F(Sequential, TheGpComparesWithNetworkMethods) {
  auto out = path("compare.json");
  auto r = run("compare --data 'synthetic:sine?n=60' --test 'synthetic:sine?n=100&part=test' --model mlp:16 "
               "--epochs 20 --methods gp,map -q --json '" + out + "'");
  ASSERT_EQ(r.code, 0) << r.output;
  auto results = read_json(out)["results"];
  ASSERT_EQ(results.size(), 2u);
  for (const auto& row : results) EXPECT_TRUE(std::isfinite(row["nll"].get<double>())) << row.dump();
}

}  // namespace
