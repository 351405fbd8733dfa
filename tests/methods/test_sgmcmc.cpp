// SG-MCMC: samples against the conjugate Gaussian posterior (with tolerances from the Monte-Carlo
// error and the discretized dynamics' own stationary covariance), temperature, the cyclical
// schedule, sample collection and bookkeeping.
#include <ATen/ATen.h>
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "credence/credence.h"
#include "problems.h"
#include "credence/methods/sgmcmc.h"

namespace credence {
namespace {

constexpr double kSigma = 0.5, kPrecision = 2.0;
constexpr int64_t kN = kConjugateRows;

torch::Tensor particles(const FittedModel& f) {
  return dynamic_cast<const ParticlePosterior&>(*f.posterior).particles();
}

FitRequest linear(const std::string& method, int64_t epochs, double lr) {
  return conjugate_request(method, epochs, lr);
}

// The exact posterior over [W (3), b] in standardized units, the inputs X1 = [x, 1], and the
// per-example Hessian A of U / N (U = -log posterior): grad U / N = A (theta - mean).
struct Exact {
  torch::Tensor mean, cov, A, X1, y;
};
Exact exact_posterior(double sigma = kSigma) {
  auto raw = load_data("synthetic:linear?n=60&d=3&noise=0.5", {torch::kFloat64}).fit;
  auto data = Standardizer::fit(raw).apply(raw);
  auto X1 = at::cat({data.x, at::ones({kN, 1}, at::kDouble)}, 1);
  auto precision = X1.t().mm(X1) / (sigma * sigma) + kPrecision * at::eye(4, at::kDouble);
  auto cov = at::inverse(precision);
  return {cov.mv(X1.t().mv(data.y)) / (sigma * sigma), cov, precision / kN, X1, data.y};
}

// The stationary covariance of the linear recursion s <- M s + noise (noise covariance Q), from
// vec(S) = (I - M (x) M)^-1 vec(Q).
torch::Tensor stationary_cov(const torch::Tensor& M, const torch::Tensor& Q) {
  const int64_t d = M.size(0);
  auto I = at::eye(d * d, at::kDouble);
  return at::linalg_solve(I - at::kron(M, M), Q.reshape({d * d, 1})).reshape({d, d});
}

// The sampler on this problem, full batch, is the linear recursion of s = [theta - mean, v]:
//   v' = m v - lr G A e + n,  e' = e + v',  n ~ N(0, 2 (1 - m) lr T G / N)
// (SGLD: m = 0, G = I; SGHMC: G = I; pSGLD: m = 0, G its preconditioner held fixed).
struct Recursion {
  torch::Tensor M, Q;
};
Recursion recursion(const torch::Tensor& A, double lr, double m, double T, const torch::Tensor& G) {
  auto I = at::eye(4, at::kDouble);
  auto step = lr * G.mm(A);
  auto M = at::cat({at::cat({I - step, m * I}, 1), at::cat({-step, m * I}, 1)}, 0);
  auto block = G * (2.0 * (1.0 - m) * lr * T / kN);  // the same n enters e' and v'
  return {M, at::cat({at::cat({block, block}, 1), at::cat({block, block}, 1)}, 0)};
}

struct Moments {
  torch::Tensor mean, var;
};
Moments moments(const torch::Tensor& samples) {
  auto s = samples.to(at::kDouble);
  return {s.mean(0), s.var(0)};
}

// Checks sampled moments against the exact posterior. The recursion's stationary covariance S is
// what the sampler targets exactly (its mean is the exact one); its distance to the posterior is
// the discretization bias, which a small step keeps small. The Monte-Carlo error: draws `spacing`
// steps apart decorrelate at least as fast as r^spacing (r: spectral radius of M), so with n
// draws, ESS >= n / tau with tau = 2 (1 + rho) / (1 - rho), the factor 2 covering oscillating and
// non-normal modes; the standard errors of a mean and a variance are sqrt(S_ii / ESS) and
// S_ii sqrt(2 / ESS). `extra_bias` is relative slack for what the recursion leaves out.
void expect_matches(const torch::Tensor& samples, const Exact& exact, const Recursion& rec, int64_t spacing,
                    double max_bias, double extra_bias = 0.0) {
  auto S = stationary_cov(rec.M, rec.Q).narrow(0, 0, 4).narrow(1, 0, 4).diagonal();
  auto post = exact.cov.diagonal();
  auto bias = (S / post - 1).abs();
  ASSERT_LT(bias.max().item<double>(), max_bias) << "the step is too large for a meaningful check";
  const double rho = std::pow(at::abs(at::linalg_eigvals(rec.M)).max().item<double>(), spacing);
  const double ess = samples.size(0) / (2.0 * (1 + rho) / (1 - rho));
  auto m = moments(samples);
  for (int64_t i = 0; i < 4; ++i) {
    const double sd = std::sqrt(post[i].item<double>());
    EXPECT_NEAR(m.mean[i].item<double>(), exact.mean[i].item<double>(),
                4.5 * sd * std::sqrt((1 + bias[i].item<double>()) / ess))
        << "coordinate " << i;
    const double rel_tol = bias[i].item<double>() + extra_bias + 4.5 * std::sqrt(2.0 / ess);
    EXPECT_NEAR(m.var[i].item<double>() / post[i].item<double>(), 1.0, rel_tol) << "coordinate " << i;
  }
}

// 200 chains, 2000 full-batch steps, half burn-in, 50 draws per chain: 20 steps apart.
constexpr int64_t kSteps = 2000, kSpacing = 20;
const char* kChains = "chains=200,samples=50";

}  // namespace

TEST(Sgmcmc, SgldSamplesTheConjugatePosterior) {
  const double lr = 0.0125;
  auto exact = exact_posterior();
  auto samples = particles(fit(linear(fmt::format("sgld:{}", kChains), kSteps, lr)));
  ASSERT_EQ(samples.size(0), 200 * 50);
  EXPECT_EQ(samples.scalar_type(), at::kFloat);  // compact, whatever the model's dtype
  expect_matches(samples, exact, recursion(exact.A, lr, 0.0, 1.0, at::eye(4, at::kDouble)), kSpacing, 0.04);
}

TEST(Sgmcmc, SghmcSamplesTheConjugatePosterior) {
  const double lr = 0.0125;
  auto exact = exact_posterior();
  auto samples = particles(fit(linear(fmt::format("sghmc:{},momentum=0.9", kChains), kSteps, lr)));
  expect_matches(samples, exact, recursion(exact.A, lr, 0.9, 1.0, at::eye(4, at::kDouble)), kSpacing, 0.04);
}

TEST(Sgmcmc, PsgldSamplesTheConjugatePosterior) {
  const double lr = 0.003;
  auto exact = exact_posterior();
  auto samples = particles(fit(linear(fmt::format("psgld:{}", kChains), kSteps, lr)));
  // At stationarity V = E[g^2] = diag(A S A) for g = A e; G = 1 / sqrt(V) (eps is negligible),
  // solved with S by fixed-point iteration. The recursion holds G fixed, but pSGLD's G follows
  // the chain (its average of g^2 over ~1 / (1 - beta) steps fluctuates with the state) and
  // the Gamma term that would correct for that is dropped, so allow 6% more bias.
  auto S = exact.cov;
  Recursion rec;
  for (int it = 0; it < 30; ++it) {
    auto G = at::diag(1.0 / exact.A.mm(S).mm(exact.A).diagonal().sqrt());
    rec = recursion(exact.A, lr, 0.0, 1.0, G);
    S = stationary_cov(rec.M, rec.Q).narrow(0, 0, 4).narrow(1, 0, 4);
  }
  expect_matches(samples, exact, rec, kSpacing, 0.04, 0.06);
}

TEST(Sgmcmc, TemperatureScalesTheNoise) {
  // Same seed, same noise, linear dynamics: after burn-in theta_T - mean = sqrt(T) (theta_1 - mean)
  // draw by draw, so T = 0.5 halves the variance (up to float32 storage).
  auto exact = exact_posterior();
  for (std::string method : {"sgld", "sghmc"}) {
    auto warm =
        particles(fit(linear(method + ":chains=20,samples=20", 600, 0.0125))).to(at::kDouble) - exact.mean;
    auto cold = particles(fit(linear(method + ":chains=20,samples=20,temperature=0.5", 600, 0.0125)))
                    .to(at::kDouble) -
                exact.mean;
    EXPECT_TRUE(at::allclose(cold, std::sqrt(0.5) * warm, 1e-4, 1e-5)) << method;
    auto ratio = cold.var(0) / warm.var(0);
    EXPECT_TRUE(at::allclose(ratio, at::full({4}, 0.5, at::kDouble), 1e-3)) << method << ratio;
  }
}

TEST(Sgmcmc, LearnedNoiseTracksTheResiduals) {
  // A learned Gaussian noise follows the mean squared residual of the samples: at its fixed point
  // sigma^2 = |y - X1 mean|^2 / N + tr(X1 cov X1^T) / N for the posterior (mean, cov) at sigma.
  auto req = linear("sgld:chains=4,samples=10", 1000, 0.0125);
  req.likelihood = "gaussian";
  auto f = fit(req);
  const double sigma = f.likelihood.sigma;
  auto post = exact_posterior(sigma);
  const double expected =
      ((post.y - post.X1.mv(post.mean)).pow(2).mean() + (post.X1.mm(post.cov) * post.X1).sum() / kN)
          .item<double>();
  EXPECT_NEAR(sigma * sigma / expected, 1.0, 0.03) << sigma;
}

TEST(Sgmcmc, CollectionScheme) {
  // After floor(0.5 * 100) = 50 burn-in steps: 20 draws evenly over the other 50, the last at the end.
  auto even = sgmcmc_collect_steps(100, 0.5, 20, 0);
  ASSERT_EQ(even.size(), 20u);
  EXPECT_EQ(even.back(), 99);
  EXPECT_GE(even.front(), 50);
  for (size_t j = 1; j < even.size(); ++j) {
    EXPECT_GE(even[j] - even[j - 1], 2);
    EXPECT_LE(even[j] - even[j - 1], 3);
  }
  // thin=7: every 7th step back from the last, as many as fit after burn-in (50 / 7 = 7).
  EXPECT_EQ(sgmcmc_collect_steps(100, 0.5, 20, 7), (std::vector<int64_t>{57, 64, 71, 78, 85, 92, 99}));
  EXPECT_EQ(sgmcmc_collect_steps(10, 0.0, 10, 0).size(), 10u);
  EXPECT_THROW(sgmcmc_collect_steps(100, 0.5, 51, 0), InvalidArgument);
  EXPECT_THROW(sgmcmc_collect_steps(100, 0.5, 20, 51), InvalidArgument);
}

TEST(Sgmcmc, CyclicalScheduleIsTheCosine) {
  // K = 100 steps, M = 4 cycles of 25: lr_k = lr / 2 (cos(pi mod(k, 25) / 25) + 1).
  for (int64_t k : {0, 1, 12, 24, 25, 37, 50, 99}) {
    const double expected = 0.05 * (std::cos(M_PI * static_cast<double>(k % 25) / 25.0) + 1.0);
    EXPECT_NEAR(cyclical_lr(0.1, k, 100, 4), expected, 1e-15) << k;
  }
  EXPECT_DOUBLE_EQ(cyclical_lr(0.1, 25, 100, 4), 0.1);  // every cycle restarts at the peak
  // When M does not divide K the cycles are still complete: 10 steps in 3 cycles of 4, 3, 3.
  for (int64_t k : {0, 4, 7}) EXPECT_EQ(cyclical_position(k, 10, 3), 0.0) << k;
  EXPECT_DOUBLE_EQ(cyclical_position(3, 10, 3), 0.75);
  for (int64_t k : {5, 8}) EXPECT_DOUBLE_EQ(cyclical_position(k, 10, 3), 1.0 / 3.0) << k;
}

TEST(Sgmcmc, CyclicalCollectsInSamplingPhases) {
  const int64_t total = 100, cycles = 4, per_cycle = 3;
  auto steps = cyclical_collect_steps(total, cycles, 0.8, per_cycle);
  ASSERT_EQ(steps.size(), 12u);
  std::vector<int> per(cycles, 0);
  for (auto k : steps) {
    EXPECT_GE(cyclical_position(k, total, cycles), 0.8) << k;  // never while exploring
    ++per[k * cycles / total];
  }
  for (int c : per) EXPECT_EQ(c, per_cycle);
  for (int64_t end : {24, 49, 74, 99})
    EXPECT_NE(std::find(steps.begin(), steps.end(), end), steps.end()) << end;
  // A sampling phase of 5 steps cannot hold 6 draws.
  EXPECT_THROW(cyclical_collect_steps(total, cycles, 0.8, 6), InvalidArgument);

  // A fit collects cycles * samples_per_cycle draws per chain; chain rows differ.
  auto p = particles(fit(linear("csgmcmc:chains=2,cycles=3,samples_per_cycle=2", 60, 0.05)));
  ASSERT_EQ(p.size(0), 3 * 2 * 2);
  EXPECT_FALSE(at::allclose(p[0], p[6]));
}

TEST(Sgmcmc, DeterministicChainMajorAndDistinctChains) {
  auto run = [](const std::string& method, uint64_t seed = 0) {
    auto req = linear(method, 40, 0.01);
    req.train.seed = seed;
    return particles(fit(req));
  };
  auto a = run("sghmc:chains=3,samples=5");
  EXPECT_TRUE(at::equal(a, run("sghmc:chains=3,samples=5")));
  EXPECT_FALSE(at::allclose(a, run("sghmc:chains=3,samples=5", 1)));
  EXPECT_FALSE(at::allclose(a.narrow(0, 0, 5), a.narrow(0, 5, 5)));
  // Without noise (T ~ 0) chain 0 follows the single-chain path (both start where MAP starts):
  // draws of chain c are rows c * S .. c * S + S - 1.
  auto two = run("sgld:chains=2,samples=5,burnin=0,temperature=1e-20,init=random");
  auto one = run("sgld:chains=1,samples=5,burnin=0,temperature=1e-20,init=random");
  EXPECT_TRUE(at::allclose(two.narrow(0, 0, 5), one, 1e-5, 1e-6));
  EXPECT_FALSE(at::allclose(two.narrow(0, 5, 5), one, 1e-3, 1e-3));
}

TEST(Sgmcmc, BadOptionsAreRefused) {
  for (std::string spec :
       {"sgld:chains=0", "sgld:temperature=0", "sgld:burnin=1", "sgld:burnin=-0.1", "sgld:samples=0",
        "sgld:thin=-1", "sgld:samples=5,thin=2", "sghmc:momentum=1", "psgld:beta=1", "psgld:eps=0",
        "csgmcmc:cycles=0", "csgmcmc:exploration=1", "csgmcmc:samples_per_cycle=0", "sgld:lr=0.1"})
    EXPECT_THROW(resolve_method(spec), InvalidArgument) << spec;
  // Checked against the run's length: 10 steps leave 5 after burn-in, too few for 20 draws.
  EXPECT_THROW(fit(linear("sgld", 10, 0.01)), InvalidArgument);
  EXPECT_THROW(fit(linear("csgmcmc:cycles=20", 10, 0.01)), InvalidArgument);
  EXPECT_THROW(fit(linear("sgld", 0, 0.01)), InvalidArgument);
}

}  // namespace credence

namespace credence {
namespace {

TEST(Sgmcmc, InitMapStartsEveryChainAtTheMapFit) {
  // With a tiny step the chains barely move from their start: at the MAP fit when init=map.
  auto map_req = moons_request("map");
  auto map = fit(map_req);
  auto theta = particles_of(map)[0];
  auto req = moons_request("sgld:chains=3,init=map,samples=1,burnin=0");
  req.train.epochs = 1;
  req.train.lr = 1e-9;
  req.map = &map;
  auto f = fit(req);
  auto draws = particles_of(f);
  ASSERT_EQ(draws.size(0), 3);
  for (int64_t c = 0; c < 3; ++c) EXPECT_LT((draws[c] - theta).abs().max().item<double>(), 1e-3);
  // Without a MAP fit given, the driver fits one first (with this recipe): chains start together.
  req.map = nullptr;
  auto own = particles_of(fit(req));
  EXPECT_LT((own[1] - own[0]).abs().max().item<double>(), 1e-3);
  EXPECT_LT((own[2] - own[0]).abs().max().item<double>(), 1e-3);
  // The default is init=map.
  req.method = "sgld:chains=3,samples=1,burnin=0";
  req.map = &map;
  auto by_default = particles_of(fit(req));
  for (int64_t c = 0; c < 3; ++c) EXPECT_LT((by_default[c] - theta).abs().max().item<double>(), 1e-3);
  // Random starts stay apart.
  req.method = "sgld:chains=3,samples=1,burnin=0,init=random";
  req.map = nullptr;
  EXPECT_GT((particles_of(fit(req))[1] - theta).abs().max().item<double>(), 1e-2);
}

}  // namespace
}  // namespace credence

namespace credence {
namespace {

TEST(Sgmcmc, DrawsFileHoldsTheSameDrawsAndIsNeverOverwritten) {
  const auto path = (std::filesystem::temp_directory_path() /
                     fmt::format("credence_draws_{}.f32", static_cast<long>(::getpid())))
                        .string();
  std::filesystem::remove(path);
  auto in_memory = particles(fit(linear("sghmc:chains=2,samples=5", 40, 0.01)));
  auto f = fit(linear(fmt::format("sghmc:chains=2,samples=5,draws_file={}", path), 40, 0.01));
  EXPECT_TRUE(at::equal(particles(f), in_memory));
  // The file is the raw float32 draws, chain-major.
  ASSERT_EQ(std::filesystem::file_size(path), static_cast<uintmax_t>(in_memory.numel() * 4));
  auto on_disk = at::from_file(path, false, in_memory.numel(), at::kFloat).view(in_memory.sizes());
  EXPECT_TRUE(at::equal(on_disk, in_memory));
  // A second run does not overwrite it.
  try {
    fit(linear(fmt::format("sgld:samples=5,draws_file={}", path), 40, 0.01));
    ADD_FAILURE() << "an existing draws_file was overwritten";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("exists"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(at::equal(at::from_file(path, false, in_memory.numel(), at::kFloat).view(in_memory.sizes()), in_memory));
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace credence
