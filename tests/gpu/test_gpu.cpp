// Every method, its predictive and its metrics on a CUDA device, checked against the same fit on
// the CPU (same seed, float64). Skipped with a message where no CUDA device is available.
#include <gtest/gtest.h>
#include <torch/cuda.h>

#include <filesystem>

#include "../methods/problems.h"

namespace credence {
namespace {

bool have_cuda() { return torch::cuda::is_available(); }
#define REQUIRE_CUDA() \
  if (!have_cuda()) GTEST_SKIP() << "no CUDA device: GPU tests run on a GPU machine (scripts/gpu-check)"

struct Fits {
  FittedModel cpu, gpu;
};

Fits fit_both(FitRequest req) {
  req.dtype = torch::kFloat64;
  Fits f;
  f.cpu = fit(req);
  req.device = torch::kCUDA;
  f.gpu = fit(req);
  return f;
}

// Reorders the same CPU and CUDA numbers, so the two fits agree to rounding, not bit for bit; the
// tolerance still catches wrong math, lost noise or a stale buffer.
void expect_close(const torch::Tensor& cpu, const torch::Tensor& gpu, double tol, const std::string& what) {
  ASSERT_TRUE(cpu.defined() && gpu.defined()) << what;
  EXPECT_TRUE(gpu.is_cuda()) << what << " left the GPU";
  double diff = (cpu.to(torch::kFloat64) - gpu.cpu().to(torch::kFloat64)).abs().max().item<double>();
  EXPECT_LT(diff, tol) << what << ": CPU and CUDA fits differ by " << diff;
}

// A method spec as a test name: "csgmcmc:chains=2" -> "csgmcmc_chains_2".
std::string test_name(const ::testing::TestParamInfo<std::string>& info) {
  std::string s = info.param;
  for (char& c : s)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return s;
}

class GpuClassification : public ::testing::TestWithParam<std::string> {};

TEST_P(GpuClassification, MatchesCpu) {
  REQUIRE_CUDA();
  FitRequest req = moons_request(GetParam());
  Fits f = fit_both(req);
  EXPECT_EQ(f.gpu.model->device().type(), torch::kCUDA);
  Dataset test = load_data("synthetic:moons?n=100&part=test").fit;
  Predictive pc = f.cpu.predict(test), pg = f.gpu.predict(test);
  expect_close(pc.probs, pg.probs, 2e-3, GetParam() + " probabilities");
  auto mc = standard_metrics(pc, test.y), mg = standard_metrics(pg, test.y);
  for (const auto& [k, v] : mc) EXPECT_NEAR(v, mg.at(k), 2e-3 * (1 + std::abs(v))) << GetParam() << " " << k;
}

INSTANTIATE_TEST_SUITE_P(EveryMethod, GpuClassification,
                         ::testing::Values("map", "laplace", "laplace:hessian=full", "laplace:subset=last_layer",
                                           "ensemble:members=2", "svgd", "repulsive", "swag",
                                           "multiswag:members=2", "mcdropout", "sgld:samples=5", "sghmc:samples=5", "psgld:samples=5",
                                           "csgmcmc:chains=2,cycles=2,samples_per_cycle=2", "ivon", "vi",
                                           "vi:estimator=weight", "pacbayes", "hmc:chains=2,warmup=20,draws=20",
                                           "nuts:chains=1,warmup=20,draws=20,max_depth=5"),
                         test_name);

class GpuRegression : public ::testing::TestWithParam<std::string> {};

TEST_P(GpuRegression, MatchesCpu) {
  REQUIRE_CUDA();
  Fits f = fit_both(conjugate_request(GetParam(), 200, 0.01));
  Dataset test = load_data("synthetic:linear?n=50&d=3&noise=0.5&part=test", {torch::kFloat64}).fit;
  Predictive pc = f.cpu.predict(test), pg = f.gpu.predict(test);
  expect_close(pc.mean, pg.mean, 1e-3, GetParam() + " mean");
  expect_close(pc.var, pg.var, 1e-3, GetParam() + " variance");
}

INSTANTIATE_TEST_SUITE_P(EveryMethod, GpuRegression,
                         ::testing::Values("map", "laplace", "vi", "ivon", "svgd", "sgld:samples=20",
                                           "nuts:chains=2,warmup=50,draws=50"),
                         test_name);

TEST(Gpu, SavedPosteriorLoadsOntoEitherDevice) {
  REQUIRE_CUDA();
  FitRequest req = moons_request("laplace");
  req.device = torch::kCUDA;
  FittedModel f = fit(req);
  auto path = std::filesystem::temp_directory_path() / "credence_gpu_test.pt";
  f.save(path.string(), /*overwrite=*/true);
  Dataset test = load_data("synthetic:moons?n=50&part=test").fit;
  auto on_cpu = FittedModel::load(path.string(), torch::kCPU);
  auto on_gpu = FittedModel::load(path.string(), torch::kCUDA);
  std::filesystem::remove(path);
  EXPECT_TRUE(on_cpu.predict(test).probs.is_cpu());
  expect_close(on_cpu.predict(test).probs, on_gpu.predict(test).probs, 1e-4, "reloaded laplace");
  expect_close(f.predict(test).probs.cpu(), on_gpu.predict(test).probs, 1e-5, "laplace before and after saving");
}

}  // namespace
}  // namespace credence
