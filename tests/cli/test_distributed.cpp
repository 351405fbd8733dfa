// Data-parallel fitting through `credence launch`: 2 processes on loopback give the 1-process posterior.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cctype>
#include <cstdio>
#include <filesystem>
#include <string>

#include "credence/credence.h"

#include "cli_test.h"

namespace {

using namespace credence_cli_test;

class DataParallel : public TempDirTest {
 protected:

  // Fits `method` in one process and in two (batch 33 of 200 rows: shards of 16 and 17, and a
  // last minibatch of 2), then compares every tensor of the saved posteriors.
  // `env` prefixes the 2-process command (e.g. a variable setting); `info` receives its fit's info.
  void expect_same_posterior(const std::string& method, const std::string& data = "synthetic:moons?n=200",
                             double rtol = 1e-8, const std::string& env = "", nlohmann::json* info = nullptr) {
    const std::string fit = "fit --data '" + data + "' --model mlp:16 --epochs 2 --batch-size 33 --dtype float64 -q "
                            "--seed 3 --force --method '" + method + "' --out ";
    auto one = run(fit + "'" + path("one.crd") + "'");
    ASSERT_EQ(one.code, 0) << one.output;
    auto two = shell(env + " '" + CREDENCE_CLI + "' launch -n 2 -- credence " + fit + "'" + path("two.crd") + "'");
    ASSERT_EQ(two.code, 0) << two.output;
    auto a = credence::FittedModel::load(path("one.crd")), b = credence::FittedModel::load(path("two.crd"));
    EXPECT_EQ(b.info.value("processes", 0), 2);
    credence::TensorMap ta, tb;
    nlohmann::json ma, mb;
    a.posterior->save(ta, ma);
    b.posterior->save(tb, mb);
    ASSERT_EQ(ta.size(), tb.size());
    for (const auto& [name, t] : ta) {
      ASSERT_TRUE(tb.count(name)) << name;
      EXPECT_TRUE(at::allclose(t, tb[name], rtol, 1e-10))
          << method << " " << name << ": max difference " << (t - tb[name]).abs().max().item<double>();
    }
    EXPECT_NEAR(a.likelihood.sigma, b.likelihood.sigma, 1e-8);
    if (info) *info = b.info;
  }

};

TEST_F(DataParallel, MapMatchesOneProcess) {
  nlohmann::json info;
  expect_same_posterior("map", "synthetic:moons?n=200", 1e-8, "", &info);
  // On one machine the sums follow backward in one call, with no buckets, through shared memory.
  EXPECT_FALSE(info.contains("report")) << info.dump();
  if (std::filesystem::is_directory("/dev/shm"))  // else the sums stay on Gloo
    EXPECT_EQ(info.value("transport", ""), "gloo, float sums through shared memory") << info.dump();
  expect_same_posterior("map", "synthetic:moons?n=200", 1e-8, "CREDENCE_SHM=0", &info);
  EXPECT_EQ(info.value("transport", ""), "gloo") << info.dump();
  // Asked for, buckets start from backward's hooks: mlp:16 fits one.
  expect_same_posterior("map", "synthetic:moons?n=200", 1e-8, "CREDENCE_BUCKET_BYTES=4194304", &info);
  EXPECT_EQ(info["report"].value("gradient_buckets", 0), 1) << info.dump();
}

TEST_F(DataParallel, GradientsInABucketPerBlockMatchOneProcess) {
  // A one-byte cap puts each of mlp:16's four blocks in a bucket of its own, started as backward
  // reaches it; with dropout (no hooks) all start after backward.
  nlohmann::json info;
  expect_same_posterior("map", "synthetic:moons?n=200", 1e-8, "CREDENCE_BUCKET_BYTES=1", &info);
  EXPECT_EQ(info["report"].value("gradient_buckets", 0), 4) << info.dump();
  for (std::string method : {"ivon:beta2=0.99", "sgld:chains=2,samples=4", "sghmc:samples=4"}) {
    nlohmann::json sampled;
    expect_same_posterior(method, "synthetic:moons?n=200", 1e-8, "CREDENCE_BUCKET_BYTES=1", &sampled);
    EXPECT_EQ(sampled["report"].value("gradient_buckets", 0), 4) << method << sampled.dump();
  }
  expect_same_posterior("mcdropout:p=0.2", "synthetic:moons?n=200", 1e-8, "CREDENCE_BUCKET_BYTES=1");
  expect_same_posterior("ensemble:members=3,parallel=data", "synthetic:moons?n=200", 1e-8, "CREDENCE_BUCKET_BYTES=1");
  auto bad = shell("CREDENCE_BUCKET_BYTES=lots '" + std::string(CREDENCE_CLI) + "' launch -n 2 -- credence fit --data "
                   "'synthetic:moons?n=200' --model mlp:16 --epochs 1 -q --out '" + path("bad.crd") + "'");
  EXPECT_NE(bad.code, 0);
  EXPECT_NE(bad.output.find("CREDENCE_BUCKET_BYTES must be a whole number"), std::string::npos) << bad.output;
}
// One weight draw per step (estimator=weight) is shared by the ranks; the per-example draws of
// estimator=local follow positions in a shard, so they match the 1-process run only in distribution.
TEST_F(DataParallel, VariationalMatchesOneProcess) { expect_same_posterior("vi:estimator=weight,elbo_samples=0"); }
TEST_F(DataParallel, SgldMatchesOneProcess) { expect_same_posterior("sgld:chains=2,samples=4"); }
TEST_F(DataParallel, IvonMatchesOneProcess) { expect_same_posterior("ivon:beta2=0.99"); }
// 600 rows in chunks of 256: rank 0 sums chunks 0 and 2 of the curvature, rank 1 chunk 1.
TEST_F(DataParallel, LaplaceMatchesOneProcess) { expect_same_posterior("laplace", "synthetic:moons?n=600"); }
// A shard draws its rows' dropout masks of the whole minibatch.
TEST_F(DataParallel, McDropoutMatchesOneProcess) { expect_same_posterior("mcdropout:p=0.2"); }
// The bound is evaluated at the whole minibatch's risk on every rank.
TEST_F(DataParallel, PacBayesMatchesOneProcess) { expect_same_posterior("pacbayes:samples=2"); }
// Members spread over the processes (1 and 2 of 3), each on all the data; a learned noise level is
// shared by all members, so its gradient is summed over the processes.
TEST_F(DataParallel, EnsembleMembersSpreadOverProcesses) { expect_same_posterior("ensemble:members=3"); }
TEST_F(DataParallel, LearnedNoiseMatchesOneProcess) { expect_same_posterior("ensemble:members=2", "synthetic:sine?n=200"); }
TEST_F(DataParallel, EnsembleOnShardsMatchesOneProcess) { expect_same_posterior("ensemble:members=3,parallel=data"); }
// Particles spread over the processes; the kernel terms gather all of them at every step.
TEST_F(DataParallel, SvgdParticlesSpreadOverProcesses) { expect_same_posterior("svgd:members=3"); }
TEST_F(DataParallel, RepulsiveMembersSpreadOverProcesses) {
  expect_same_posterior("repulsive:members=3,context=4", "synthetic:sine?n=99");
}
TEST_F(DataParallel, WeightRepulsionSpreadOverProcesses) { expect_same_posterior("repulsive:members=3,space=weight"); }
// MCMC chains spread over the processes; the sampled noise level is gathered with the weights.
// Draws are stored in float32, so rounding of the (float64) MAP start can show at 1e-7.
TEST_F(DataParallel, NutsChainsSpreadOverProcesses) {
  expect_same_posterior("nuts:chains=3,warmup=10,draws=10,max_depth=5", "synthetic:sine?n=99", 1e-6);
}
TEST_F(DataParallel, HmcChainsSpreadOverProcesses) { expect_same_posterior("hmc:chains=2,warmup=10,draws=10,steps=5"); }

TEST_F(DataParallel, FailureStopsTheRunWithItsExitCode) {
  // 201 rows in minibatches of 50 leave a last one of 1 row, which 2 processes cannot share.
  auto r = run("launch -n 2 -- credence fit --data 'synthetic:moons?n=201' --model mlp:4 --epochs 1 --batch-size 50 -q "
               "--out '" + path("bad.crd") + "'");
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("cannot be shared by 2 processes"), std::string::npos) << r.output;
  EXPECT_FALSE(std::filesystem::exists(path("bad.crd")));
}

// One process retries a fit that diverges at its method's own step size; ranks could disagree about
// a divergence, so a data-parallel fit reports it instead.
TEST_F(DataParallel, ADivergedFitIsNotRetriedAcrossProcesses) {
  auto r = run("launch -n 2 -- credence fit --data 'synthetic:moons?n=300' --model mlp:16 --epochs 5 -q "
               "--method ivon:hess_init=1e-12 --out '" + path("div.crd") + "'");
  EXPECT_NE(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("diverged"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("refitted"), std::string::npos) << r.output;
  EXPECT_FALSE(std::filesystem::exists(path("div.crd")));
}

TEST_F(DataParallel, LaunchReportsACommandThatCannotRun) {
  auto r = run("launch -n 2 -- /nonexistent/program");
  EXPECT_EQ(r.code, 127) << r.output;
}

TEST_F(DataParallel, ARankWithoutPeersGivesUpNamingThem) {
  // Rank 0 of 2 with no rank 1: the join times out and says which rank is missing.
  auto r = shell("RANK=0 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=29517 '" + std::string(CREDENCE_CLI) +
                 "' fit -q --data synthetic:sine --model mlp:4 --epochs 1 --dist-timeout 2 --out '" + path("a.crd") + "'");
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("rank(s) 1 did not join within 2 s"), std::string::npos) << r.output;
  EXPECT_FALSE(std::filesystem::exists(path("a.crd")));
}

TEST_F(DataParallel, StoppingTheLauncherStopsItsRanksAndWritesNothing) {
  // A fit that runs for minutes; SIGTERM to the launcher after a second must end it all.
  const std::string cmd = "'" + std::string(CREDENCE_CLI) + "' launch -n 2 -- credence fit -q --data "
                          "'synthetic:moons?n=2000' --model mlp:64,64 --epochs 100000 --batch-size 10 --out '" +
                          path("long.crd") + "'";
  auto r = shell("(" + cmd + " & pid=$!; sleep 1.5; ranks=$(pgrep -P $pid); kill -TERM $pid; wait $pid; "
                 "echo \"launcher exit $?\"; echo \"ranks: $ranks\"; alive=0; for p in $ranks; do kill -0 $p 2>/dev/null "
                 "&& alive=1; done; [ $alive = 0 ] && echo ranks-gone || echo ranks-still-running)");
  const auto listed = r.output.find("ranks: ");
  ASSERT_NE(listed, std::string::npos) << r.output;
  EXPECT_TRUE(std::isdigit(static_cast<unsigned char>(r.output[listed + 7]))) << "no rank was running: " << r.output;
  EXPECT_NE(r.output.find("launcher exit 143"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("ranks-gone"), std::string::npos) << r.output;
  EXPECT_FALSE(std::filesystem::exists(path("long.crd")));
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(root_), {}), 0);  // no temporaries either
}

TEST_F(DataParallel, APeerThatDiesIsReportedNotASilentCrash) {
  // Rank 1 is killed mid-run; rank 0's next exchange finds the connection closed and says so
  // (before, the write raised SIGPIPE and rank 0 vanished without a word).
  const std::string fit = "' fit -q --data 'synthetic:moons?n=2000' --model mlp:64,64 --epochs 100000 --batch-size 10 ";
  const std::string env = "WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=29563 ";
  auto r = shell("(RANK=1 " + env + "timeout -s KILL 3 '" + std::string(CREDENCE_CLI) + fit + "--out '" +
                 path("r1.crd") + "' >/dev/null 2>&1 &) ; RANK=0 " + env + "timeout 120 '" + std::string(CREDENCE_CLI) +
                 fit + "--out '" + path("r0.crd") + "'");
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("another process of this data-parallel run stopped"), std::string::npos) << r.output;
  EXPECT_FALSE(std::filesystem::exists(path("r0.crd")));
}

}  // namespace
