// credence meta-fit and --prior FILE end to end: a learned prior is written, used, and refused where
// it does not apply.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>

#include "cli_test.h"

namespace {
using namespace credence_cli_test;

class MetaFitCli : public TempDirTest {};

TEST_F(MetaFitCli, LearnsAPriorThatFitsUseAndNeverOverwritesIt) {
  auto prior = path("prior.crd");
  const std::string learn = "meta-fit --tasks 'synthetic:sinusoid?tasks=6&points=5' --model mlp:8 --rounds 3 --out '" +
                            prior + "'";
  auto r = run(learn);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("learned a prior for mlp:8 from 6 tasks"), std::string::npos) << r.output;
  ASSERT_TRUE(std::filesystem::exists(prior));
  auto again = run(learn);
  EXPECT_EQ(again.code, 1) << again.output;
  EXPECT_NE(again.output.find("--force"), std::string::npos) << again.output;

  // A new task from the same family, fitted with the prior and evaluated.
  auto task = [&](const std::string& name, double first) {
    std::ofstream out(path(name));
    out << "x,y\n";
    for (int i = 0; i < 8; ++i) {
      double x = first + 1.1 * i;
      out << x << "," << 0.6 * x + 0.9 * std::sin(1.5 * (x - 0.05)) + 5.0 << "\n";
    }
    return "csv:" + path(name) + "?target=y";
  };
  auto post = path("post.crd");
  r = run("fit --data '" + task("task.csv", -4.5) + "' --model mlp:8 --method laplace:subset=all,hessian=full "
          "--epochs 50 --batch-size 8 --prior '" + prior + "' -q --out '" + post + "'");
  ASSERT_EQ(r.code, 0) << r.output;
  r = run("evaluate --posterior '" + post + "' --data '" + task("test.csv", -4.0) + "' --json '" + path("m.json") + "'");
  ASSERT_EQ(r.code, 0) << r.output;
  auto metrics = read_json(path("m.json"));
  EXPECT_TRUE(metrics.dump().find("nll") != std::string::npos) << metrics.dump();

  // Methods with a prior of their own, and another model, refuse it.
  r = run("fit --data 'synthetic:sine?n=8' --method gp --prior '" + prior + "' -q --out '" + path("gp.crd") + "'");
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("does not use a prior over the weights"), std::string::npos) << r.output;
  r = run("fit --data 'synthetic:sine?n=8' --model mlp:9 --prior '" + prior + "' -q --out '" + path("m9.crd") + "'");
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("use the model the prior was learned for"), std::string::npos) << r.output;
  r = run("fit --data 'synthetic:sine?n=8' --prior '" + path("missing.crd") + "' -q --out '" + path("x.crd") + "'");
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("does not exist"), std::string::npos) << r.output;
  r = run("describe --priors");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("gaussian:PRECISION"), std::string::npos) << r.output;
  r = run("meta-fit --tasks 'synthetic:moons' --out '" + path("p2.crd") + "'");
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("known: synthetic:sinusoid"), std::string::npos) << r.output;
}

}  // namespace
