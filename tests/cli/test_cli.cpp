// The `credence` binary end to end: describe, fit, evaluate, predict, compare, and its errors.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cmath>
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

class Cli : public TempDirTest {
 protected:
  /// Fits a small MAP regression on synthetic:sine and returns the posterior path.
  std::string fit_sine() {
    auto out = path("sine.crd");
    auto r = run("fit --data synthetic:sine --model mlp:16 --epochs 5 -q --out '" + out + "'");
    EXPECT_EQ(r.code, 0) << r.output;
    return out;
  }
  /// Expects exit code 1 and exactly one line "credence: error: ..." containing `part`.
  void expect_error(const std::string& args, const std::string& part) {
    auto r = run(args);
    EXPECT_EQ(r.code, 1) << args << "\n" << r.output;
    auto lines = lines_of(r.output);
    ASSERT_EQ(lines.size(), 1u) << args << "\n" << r.output;
    EXPECT_EQ(lines[0].rfind("credence: error: ", 0), 0u) << lines[0];
    EXPECT_NE(lines[0].find(part), std::string::npos) << "lacks '" << part << "': " << lines[0];
  }
};


TEST_F(Cli, DescribeListsMethodsAndOptions) {
  auto r = run("describe");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("map"), std::string::npos) << r.output;
  auto m = run("describe map");
  EXPECT_EQ(m.code, 0) << m.output;
  EXPECT_NE(m.output.find("optimizer"), std::string::npos) << m.output;
  EXPECT_NE(m.output.find("adam"), std::string::npos) << m.output;
  expect_error("describe nosuch", "nosuch");
  auto models = run("describe --models");
  EXPECT_EQ(models.code, 0) << models.output;
  for (const char* family : {"mlp:H1,H2,...", "cnn:lenet", "torchscript:PATH", "?act=..."})
    EXPECT_NE(models.output.find(family), std::string::npos) << family << "\n" << models.output;
}

TEST_F(Cli, FitWritesAFileAndRefusesToOverwrite) {
  auto out = fit_sine();
  ASSERT_TRUE(std::filesystem::exists(out));
  EXPECT_GT(std::filesystem::file_size(out), 100u);
  auto before = std::filesystem::last_write_time(out);
  auto again = run("fit --data synthetic:sine --model mlp:16 --epochs 5 -q --out '" + out + "'");
  EXPECT_EQ(again.code, 1) << again.output;
  EXPECT_NE(again.output.find("exists"), std::string::npos) << again.output;
  EXPECT_NE(again.output.find("credence: error:"), std::string::npos) << again.output;
  EXPECT_EQ(std::filesystem::last_write_time(out), before);
  auto forced = run("fit --data synthetic:sine --model mlp:16 --epochs 5 -q --force --out '" + out + "'");
  EXPECT_EQ(forced.code, 0) << forced.output;
  // Without -q, fit reports what it did.
  auto loud = run("fit --data synthetic:sine --model mlp:4 --epochs 1 --out '" + path("b.crd") + "'");
  EXPECT_EQ(loud.code, 0) << loud.output;
  EXPECT_NE(loud.output.find("fitted map"), std::string::npos) << loud.output;
}

TEST_F(Cli, EvaluateWritesJsonMetrics) {
  auto post = fit_sine();
  auto json = path("metrics.json");
  auto r = run("evaluate -q --posterior '" + post + "' --data 'synthetic:sine?part=test' --json '" + json + "'");
  ASSERT_EQ(r.code, 0) << r.output;
  auto j = read_json(json);
  ASSERT_TRUE(j["results"].is_array());
  ASSERT_EQ(j["results"].size(), 1u);
  const auto& row = j["results"][0];
  for (const char* key : {"rmse", "nll", "coverage_90"}) {
    ASSERT_TRUE(row.contains(key)) << key << " in " << row.dump();
    EXPECT_TRUE(row[key].is_number()) << key;
  }
  EXPECT_GT(row["rmse"].get<double>(), 0.0);
  EXPECT_LT(row["rmse"].get<double>(), 5.0);  // sin(x) + noise stays within a few units
  EXPECT_GE(row["coverage_90"].get<double>(), 0.0);
  EXPECT_LE(row["coverage_90"].get<double>(), 1.0);
  EXPECT_EQ(row["method"], "map");
  // The table is printed too.
  EXPECT_NE(r.output.find("rmse"), std::string::npos) << r.output;
  // --json refuses to replace a file.
  auto again = run("evaluate -q --posterior '" + post + "' --data 'synthetic:sine?part=test' --json '" + json + "'");
  EXPECT_EQ(again.code, 1) << again.output;
}

TEST_F(Cli, PredictWritesCsv) {
  auto post = fit_sine();
  auto csv = path("x.csv");
  auto r = run("predict -q --posterior '" + post + "' --data 'synthetic:sine?part=test&n=17' --out '" + csv + "'");
  ASSERT_EQ(r.code, 0) << r.output;
  std::ifstream in(csv);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  ASSERT_EQ(lines.size(), 18u);
  EXPECT_EQ(lines[0], "mean,std,lower_90,upper_90");
  for (size_t i = 1; i < lines.size(); ++i) {
    double mean, sd, lo, hi;
    char c1, c2, c3;
    std::istringstream row(lines[i]);
    ASSERT_TRUE(row >> mean >> c1 >> sd >> c2 >> lo >> c3 >> hi) << lines[i];
    EXPECT_GT(sd, 0.0) << lines[i];
    // A MAP predictive is one Gaussian: the 90% interval is mean -+ 1.6449 sd.
    const double z = 1.6448536269514722;
    EXPECT_NEAR(lo, mean - z * sd, 1e-4 * (1 + std::abs(mean) + sd)) << lines[i];
    EXPECT_NEAR(hi, mean + z * sd, 1e-4 * (1 + std::abs(mean) + sd)) << lines[i];
  }
  // Without --out the CSV goes to standard output.
  auto stdout_run = run("predict -q --posterior '" + post + "' --data 'synthetic:sine?part=test&n=3'");
  ASSERT_EQ(stdout_run.code, 0) << stdout_run.output;
  auto out_lines = lines_of(stdout_run.output);
  ASSERT_EQ(out_lines.size(), 4u) << stdout_run.output;
  EXPECT_EQ(out_lines[0], "mean,std,lower_90,upper_90");
  // Data of another input shape is refused.
  expect_error("predict -q --posterior '" + post + "' --data 'synthetic:moons?n=5'", "shape");
}

TEST_F(Cli, CompareWritesJsonResults) {
  auto json = path("cmp.json");
  auto r = run("compare -q --data synthetic:moons --test 'synthetic:moons?part=test' --model mlp:16 "
               "--methods map --epochs 5 --json '" + json + "'");
  ASSERT_EQ(r.code, 0) << r.output;
  auto j = read_json(json);
  ASSERT_EQ(j["results"].size(), 1u);
  const auto& row = j["results"][0];
  EXPECT_EQ(row["method"], "map");
  for (const char* key : {"accuracy", "nll", "ece", "brier", "fit_seconds", "predict_seconds"}) {
    ASSERT_TRUE(row.contains(key)) << key << " in " << row.dump();
    EXPECT_TRUE(row[key].is_number()) << key;
    EXPECT_GE(row[key].get<double>(), 0.0) << key;
  }
  EXPECT_LE(row["accuracy"].get<double>(), 1.0);
  EXPECT_GT(row["accuracy"].get<double>(), 0.5);  // better than chance on two moons
  EXPECT_LE(row["brier"].get<double>(), 2.0);
  EXPECT_GT(row["fit_seconds"].get<double>(), 0.0);
  EXPECT_EQ(j["model"], "mlp:16");
  EXPECT_EQ(j["data"], "synthetic:moons");
}

// Laplace's rows give the parts of its fit time and the prior precision and noise it tuned.
TEST_F(Cli, CompareRowsGiveLaplaceFitPartsAndTunedHyperparameters) {
  auto json = path("parts.json");
  auto r = run("compare -q --data 'synthetic:sine?n=100' --test 'synthetic:sine?part=test&n=50' --model mlp:8 "
               "--methods 'map;laplace;laplace:prior=fixed' --epochs 20 --prior-precision 2 --json '" + json + "'");
  ASSERT_EQ(r.code, 0) << r.output;
  const auto rows = read_json(json)["results"];
  ASSERT_EQ(rows.size(), 3u);
  const auto& tuned = rows[1]["method"] == "laplace" ? rows[1] : rows[0]["method"] == "laplace" ? rows[0] : rows[2];
  ASSERT_EQ(tuned["method"], "laplace");
  for (const char* key : {"map_seconds", "curvature_seconds", "marglik_seconds", "prior_precision", "sigma"}) {
    ASSERT_TRUE(tuned.contains(key) && tuned[key].is_number()) << key << " in " << tuned.dump();
    EXPECT_GT(tuned[key].get<double>(), 0.0) << key;
  }
  EXPECT_LE(tuned["map_seconds"].get<double>() + tuned["curvature_seconds"].get<double>() +
                tuned["marglik_seconds"].get<double>(),
            tuned["fit_seconds"].get<double>() + 1e-6);
  for (const auto& row : rows) {
    if (row["method"] == "laplace:prior=fixed") {
      EXPECT_FALSE(row.contains("marglik_seconds")) << row.dump();
      EXPECT_NEAR(row["prior_precision"].get<double>(), 2.0, 1e-6);  // the given prior, untouched
    }
    if (row["method"] == "map") EXPECT_FALSE(row.contains("curvature_seconds"));
  }
}

// With a validation part, Laplace's row says which prior prior=auto kept and both validation NLLs.
TEST_F(Cli, CompareRowsGiveLaplacePriorChoice) {
  auto json = path("choice.json");
  auto r = run("compare -q --data 'synthetic:moons?n=200&holdout=val:0.25' --test 'synthetic:moons?part=test&n=100' "
               "--model mlp:8 --methods 'map;laplace' --epochs 20 --json '" + json + "'");
  ASSERT_EQ(r.code, 0) << r.output;
  for (const auto& row : read_json(json)["results"]) {
    if (row["method"] != "laplace") continue;
    ASSERT_TRUE(row.contains("prior_choice")) << row.dump();
    const auto& choice = row["prior_choice"];
    const double marglik = choice["val_nll_marglik"].get<double>(), fixed = choice["val_nll_fixed"].get<double>();
    EXPECT_EQ(choice["chosen"], marglik <= fixed ? "marglik" : "fixed");
  }
}

TEST_F(Cli, CompareReportsConformalAndCredibleSets) {
  // 300 of the 1000 training points are held out for calibration, never fitted on.
  auto json = path("conformal.json");
  auto r = run("compare -q --data 'synthetic:moons?n=1000&holdout=cal:300' "
               "--test 'synthetic:moons?part=test&n=2000' --model mlp:16 --methods map --epochs 50 "
               "--conformal-level 0.8 --json '" + json + "'");
  ASSERT_EQ(r.code, 0) << r.output;
  const auto row = read_json(json)["results"][0];
  for (const char* key : {"conformal_coverage", "conformal_set_size", "credible_coverage",
                          "credible_set_size", "mce"}) {
    ASSERT_TRUE(row.contains(key)) << key << " in " << row.dump();
    EXPECT_TRUE(row[key].is_number()) << key;
  }
  // 2000 test points: the 80% sets cover 80% give or take sampling error (sd ~ .009) and the
  // 1/(n_cal + 1) over-coverage. (An untrained model would over-cover: many scores tie at 1.)
  EXPECT_GT(row["conformal_coverage"].get<double>(), 0.75);
  EXPECT_LT(row["conformal_coverage"].get<double>(), 0.86);
  EXPECT_GE(row["credible_coverage"].get<double>(), 0.0);
  EXPECT_LE(row["credible_coverage"].get<double>(), 1.0);
  for (const char* key : {"conformal_set_size", "credible_set_size"}) {
    EXPECT_GE(row[key].get<double>(), 0.0) << key;
    EXPECT_LE(row[key].get<double>(), 2.0) << key;  // two classes
  }
  // Regression rows get normalized-residual intervals (width in target units) and CRPS.
  auto reg = path("conformal_reg.json");
  r = run("compare -q --data 'synthetic:linear?n=600&holdout=cal:200' "
          "--test 'synthetic:linear?part=test&n=1000' --model mlp:16 --methods map --epochs 20 "
          "--json '" + reg + "'");
  ASSERT_EQ(r.code, 0) << r.output;
  const auto rrow = read_json(reg)["results"][0];
  for (const char* key : {"conformal_coverage", "conformal_set_size", "credible_coverage", "crps"})
    ASSERT_TRUE(rrow.contains(key)) << key << " in " << rrow.dump();
  EXPECT_GT(rrow["conformal_coverage"].get<double>(), 0.84);
  EXPECT_LT(rrow["conformal_coverage"].get<double>(), 0.96);
  EXPECT_GT(rrow["conformal_set_size"].get<double>(), 0.0);
  EXPECT_GT(rrow["crps"].get<double>(), 0.0);
  // Too small a calibration part, and the hint when there is none.
  expect_error("compare -q --data 'synthetic:moons?holdout=cal:50' --test 'synthetic:moons?part=test' "
               "--methods map --epochs 1",
               "calibration part of --data has 50 points");
  auto hint = run("compare --data synthetic:moons --test 'synthetic:moons?part=test' --model mlp:4 "
                  "--methods map --epochs 1");
  ASSERT_EQ(hint.code, 0) << hint.output;
  EXPECT_NE(hint.output.find("hint: add holdout=cal:0.1"), std::string::npos) << hint.output;
}

TEST_F(Cli, BadInputsGiveOneLineErrors) {
  auto out = "--out '" + path("p.crd") + "'";
  expect_error("fit -q --data synthetic:sine --method nosuch --epochs 1 " + out, "nosuch");
  expect_error("fit -q --data synthetic:sine --method map:foo=1 --epochs 1 " + out, "foo");
  expect_error("fit -q --data 'synthetic:sine?bogus=1' --epochs 1 " + out, "bogus");
  expect_error("fit -q --data 'csv:" + path("missing.csv") + "?target=y' --epochs 1 " + out, "missing.csv");
  expect_error("fit -q --data synthetic:sine --model rnn:4 --epochs 1 " + out, "rnn:4");
  expect_error("fit -q --data synthetic:sine --likelihood categorical --epochs 1 " + out, "categorical");
  // A TorchScript module that cannot take these inputs ([1], it wants [3]) is a user error too.
  expect_error("fit -q --data synthetic:sine --model 'torchscript:" + std::string(CREDENCE_TEST_DATA_DIR) +
                   "/tiny_plain.pt' --epochs 1 " + out,
               "tiny_plain.pt");
  expect_error("evaluate -q --posterior '" + path("none.crd") + "' --data synthetic:sine", "none.crd");
  expect_error("compare -q --data synthetic:moons --test synthetic:moons --methods nosuch", "nosuch");
  EXPECT_FALSE(std::filesystem::exists(path("p.crd")));
  // Command-line syntax errors are CLI11's: non-zero and not an internal error.
  auto r = run("fit --data synthetic:sine");
  EXPECT_NE(r.code, 0);
  EXPECT_EQ(r.output.find("internal error"), std::string::npos) << r.output;
}

}  // namespace

namespace {

TEST_F(Cli, BoundCertifiesPacBayesFitsOnly) {
  auto post = path("pb.crd");
  auto r = run("fit -q --data 'synthetic:moons?n=400' --model mlp:16 --epochs 20 --lr 0.01 --method "
               "'pacbayes:prior_std=0.1' --out '" + post + "'");
  ASSERT_EQ(r.code, 0) << r.output;
  auto json = path("bound.json");
  r = run("bound --posterior '" + post + "' --test 'synthetic:moons?n=400&part=test' --networks 2000 --json '" +
          json + "'");
  ASSERT_EQ(r.code, 0) << r.output;
  auto j = read_json(json);
  EXPECT_EQ(j["n"], 200);         // the half the prior never saw
  EXPECT_EQ(j["networks"], 2000);  // 10 passes over 200 rows
  EXPECT_GT(j["bound"].get<double>(), j["error_estimate"].get<double>());
  EXPECT_LT(j["bound"].get<double>(), 1.0);
  EXPECT_GE(j["test_error"].get<double>(), 0.0);
  EXPECT_NE(r.output.find("0-1 error"), std::string::npos) << r.output;
  // The data prior saw part of the training set: other data cannot be certified.
  expect_error("bound --posterior '" + post + "' --data 'synthetic:moons?n=400&part=test'", "omit --data");
  expect_error("bound --posterior '" + fit_sine() + "'", "--method pacbayes");
}

}  // namespace
