#include "credence/sequential/objectives.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <cmath>

#include "credence/core/error.h"
#include "credence/core/rng.h"
#include "credence/core/spec.h"

namespace credence {

torch::Tensor sobol_points(int64_t n, int64_t dim, uint64_t seed, int64_t skip) {
  constexpr int64_t kBits = 30;  // ATen's Sobol engine works on 30-bit integers
  if (dim < 1 || dim > 21201) throw InvalidArgument(fmt::format("Sobol points need 1 <= dim <= 21201, got {}", dim));
  if (n < 0 || skip < 0) throw InvalidArgument("Sobol points: n and skip must be >= 0");
  auto lng = at::TensorOptions().dtype(at::kLong);
  auto state = at::zeros({dim, kBits}, lng);
  at::_sobol_engine_initialize_state_(state, dim);
  // Owen-style scrambling: random lower-triangular bit matrices and a random digital shift.
  auto gen = cpu_generator(rng_key(seed, Stream::Sample, 0x50b01));
  auto shift_bits = at::randint(2, {dim, kBits}, gen, lng);
  auto shift = shift_bits.mv(at::pow(2, at::arange(kBits, lng)));
  auto ltm = at::randint(2, {dim, kBits, kBits}, gen, lng).tril();
  at::_sobol_engine_scramble_(state, ltm, dim);
  auto first = shift.to(at::kDouble).unsqueeze(0) / std::pow(2.0, kBits);
  const int64_t total = skip + n;
  if (total <= 1) return first.narrow(0, 0, n);
  auto rest = std::get<0>(at::_sobol_engine_draw(shift.clone(), total - 1, state, dim, 0, at::kDouble));
  return at::cat({first, rest}).narrow(0, skip, n).contiguous();
}

namespace {

double branin(const std::vector<double>& x) {
  const double a = 1, b = 5.1 / (4 * M_PI * M_PI), c = 5 / M_PI, r = 6, s = 10, t = 1 / (8 * M_PI);
  return a * std::pow(x[1] - b * x[0] * x[0] + c * x[0] - r, 2) + s * (1 - t) * std::cos(x[0]) + s;
}

double hartmann6(const std::vector<double>& x) {
  static const double alpha[4] = {1.0, 1.2, 3.0, 3.2};
  static const double A[4][6] = {{10, 3, 17, 3.5, 1.7, 8},
                                 {0.05, 10, 17, 0.1, 8, 14},
                                 {3, 3.5, 1.7, 10, 17, 8},
                                 {17, 8, 0.05, 10, 0.1, 14}};
  static const double P[4][6] = {{1312, 1696, 5569, 124, 8283, 5886},
                                 {2329, 4135, 8307, 3736, 1004, 9991},
                                 {2348, 1451, 3522, 2883, 3047, 6650},
                                 {4047, 8828, 8732, 5743, 1091, 381}};
  double f = 0;
  for (int i = 0; i < 4; ++i) {
    double inner = 0;
    for (int j = 0; j < 6; ++j) inner += A[i][j] * std::pow(x[j] - 1e-4 * P[i][j], 2);
    f -= alpha[i] * std::exp(-inner);
  }
  return f;
}

double ackley(const std::vector<double>& x) {
  double sq = 0, cs = 0;
  for (double v : x) sq += v * v, cs += std::cos(2 * M_PI * v);
  const double d = static_cast<double>(x.size());
  return -20 * std::exp(-0.2 * std::sqrt(sq / d)) - std::exp(cs / d) + 20 + M_E;
}

double rosenbrock(const std::vector<double>& x) {
  double f = 0;
  for (size_t i = 0; i + 1 < x.size(); ++i) f += 100 * std::pow(x[i + 1] - x[i] * x[i], 2) + std::pow(1 - x[i], 2);
  return f;
}

double levy(const std::vector<double>& x) {
  auto w = [](double v) { return 1 + (v - 1) / 4; };
  const size_t d = x.size();
  double f = std::pow(std::sin(M_PI * w(x[0])), 2);
  for (size_t i = 0; i + 1 < d; ++i)
    f += std::pow(w(x[i]) - 1, 2) * (1 + 10 * std::pow(std::sin(M_PI * w(x[i]) + 1), 2));
  f += std::pow(w(x[d - 1]) - 1, 2) * (1 + std::pow(std::sin(2 * M_PI * w(x[d - 1])), 2));
  return f;
}

}  // namespace

std::string objective_names() { return "branin, hartmann6, ackley:D, rosenbrock:D, levy:D (each with ?noise=SD)"; }

Objective make_objective(const std::string& text) {
  const auto q = text.find('?');
  std::string head = text.substr(0, q);
  double noise = 0;
  if (q != std::string::npos) {
    const std::string query = text.substr(q + 1);
    if (query.rfind("noise=", 0) != 0 || query.find('&') != std::string::npos)
      throw InvalidArgument(fmt::format("objective '{}': the only option is ?noise=SD", text));
    noise = parse_double(query.substr(6), "objective noise=");
    if (!(noise >= 0)) throw InvalidArgument(fmt::format("objective '{}': noise must be >= 0", text));
  }
  const auto colon = head.find(':');
  const std::string name = head.substr(0, colon);
  int64_t dim = 0;
  if (colon != std::string::npos) {
    dim = parse_int(head.substr(colon + 1), fmt::format("objective {}:D", name));
    if (dim < 1 || dim > 1000) throw InvalidArgument(fmt::format("objective '{}': D must be in 1..1000", text));
  }
  Objective o;
  o.name = text;
  o.noise = noise;
  auto box = [&](double lo, double hi) {
    o.lower.assign(dim, lo);
    o.upper.assign(dim, hi);
  };
  auto fixed_dim = [&](int64_t d) {
    if (colon != std::string::npos) throw InvalidArgument(fmt::format("objective '{}' has no :D (it is {}-D)", name, d));
  };
  auto needs_dim = [&]() {
    if (colon == std::string::npos)
      throw InvalidArgument(fmt::format("objective '{}' needs its dimension, e.g. {}:10", name, name));
  };
  if (name == "branin") {
    fixed_dim(2);
    o.lower = {-5, 0};
    o.upper = {10, 15};
    o.minimum = 0.39788735772973816;
    o.value = branin;
  } else if (name == "hartmann6") {
    fixed_dim(6);
    dim = 6;
    box(0, 1);
    o.minimum = -3.3223680114155147;
    o.value = hartmann6;
  } else if (name == "ackley") {
    needs_dim();
    box(-32.768, 32.768);
    o.value = ackley;
  } else if (name == "rosenbrock") {
    needs_dim();
    if (dim < 2) throw InvalidArgument("objective rosenbrock needs D >= 2");
    box(-5, 10);
    o.value = rosenbrock;
  } else if (name == "levy") {
    needs_dim();
    box(-10, 10);
    o.value = levy;
  } else {
    throw InvalidArgument(fmt::format("unknown objective '{}' (known: {})", name, objective_names()));
  }
  return o;
}

}  // namespace credence
