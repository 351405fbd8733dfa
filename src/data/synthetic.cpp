// synthetic:sine|moons|linear|tokens[?n=N&seed=S&noise=SD&part=train|test&d=D&length=T&vocab=V]: seeded toy
// problems.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>

#include <cmath>

#include "credence/core/error.h"
#include "loaders.h"

namespace credence::data_detail {
namespace {

constexpr double kPi = 3.14159265358979323846;
const at::TensorOptions kF64 = at::TensorOptions().dtype(at::kDouble);

// 1-D sine with a gap: train x in [-3,-1] U [1,3], test x in [-4,4]; y = sin(x) + noise * eps.
void sine(Dataset& d, int64_t n, double noise, bool test, at::Generator& gen) {
  at::Tensor x;
  if (test) {
    x = at::rand({n}, gen, kF64).mul_(8.0).sub_(4.0);
  } else {
    at::Tensor magnitude = at::rand({n}, gen, kF64).mul_(2.0).add_(1.0);
    at::Tensor sign = at::rand({n}, gen, kF64).lt(0.5).to(at::kDouble).mul_(2.0).sub_(1.0);
    x = magnitude * sign;
  }
  at::Tensor y = at::sin(x) + noise * at::randn({n}, gen, kF64);
  d.x = x.unsqueeze(1);
  d.y = y;
  d.task = Task::Regression;
}

// Two interleaving half circles (as scikit-learn's make_moons), Gaussian noise on x.
void moons(Dataset& d, int64_t n, double noise, at::Generator& gen) {
  at::Tensor label = at::rand({n}, gen, kF64).lt(0.5).to(at::kLong);
  at::Tensor t = at::rand({n}, gen, kF64).mul_(kPi);
  at::Tensor inner = label.to(at::kDouble);
  // label 0: (cos t, sin t); label 1: (1 - cos t, 0.5 - sin t)
  at::Tensor x0 = at::cos(t) * (1 - 2 * inner) + inner;
  at::Tensor x1 = at::sin(t) * (1 - 2 * inner) + 0.5 * inner;
  d.x = at::stack({x0, x1}, 1) + noise * at::randn({n, 2}, gen, kF64);
  d.y = label;
  d.task = Task::Classification;
  d.num_classes = 2;
}

// x ~ N(0, I_d), y = x . w + noise * eps, with w ~ N(0, I_d) fixed by the seed (same for
// train and test).
void linear(Dataset& d, int64_t n, int64_t dim, double noise, uint64_t seed, at::Generator& gen) {
  auto w_gen = at::make_generator<at::CPUGeneratorImpl>(derive_seed(seed, 100));
  at::Tensor w = at::randn({dim}, w_gen, kF64);
  at::Tensor x = at::randn({n, dim}, gen, kF64);
  d.x = x;
  d.y = at::mv(x, w) + noise * at::randn({n}, gen, kF64);
  d.task = Task::Regression;
}

// Sequences of `length` token ids: ids 0 and 1 each appear once, at random places, among ids drawn
// from 2..vocab-1; the label says whether 0 comes before 1, flipped with probability `flip`. A
// bag of tokens cannot tell the classes apart: the model needs positions.
void tokens(Dataset& d, int64_t n, int64_t length, int64_t vocab, double flip, at::Generator& gen) {
  auto x = at::randint(2, vocab, {n, length}, gen, at::TensorOptions().dtype(at::kLong));
  auto places = at::rand({n, length}, gen, kF64).argsort(1, /*descending=*/false).narrow(1, 0, 2);  // two distinct positions
  x.scatter_(1, places, at::arange(2, at::kLong).expand({n, 2}).contiguous());
  auto label = places.select(1, 0).lt(places.select(1, 1)).to(at::kLong);
  auto flipped = at::rand({n}, gen, kF64).lt(flip).to(at::kLong);
  d.x = x.to(at::kDouble);
  d.y = label.bitwise_xor(flipped);
  d.task = Task::Classification;
  d.num_classes = 2;
}

}  // namespace

Dataset load_synthetic(const Spec& spec, const DataOptions& options) {
  const std::string& kind = spec.body;
  if (kind != "sine" && kind != "moons" && kind != "linear" && kind != "tokens")
    throw DataError(fmt::format("spec '{}': synthetic set '{}' is unknown (known: sine, moons, "
                                "linear, tokens)",
                                spec.text, kind));
  std::set<std::string> keys{"n", "seed", "noise", "part"};
  if (kind == "linear") keys.insert("d");
  if (kind == "tokens") keys.insert({"length", "vocab"});
  spec.check_keys(with_common_keys(keys), /*data_error=*/true);

  const long n = spec_int(spec, "n", 200);
  if (n < 1) throw DataError(fmt::format("spec '{}': n must be >= 1, got {}", spec.text, n));
  const long seed = spec_int(spec, "seed", 0);
  const double default_noise = kind == "sine" ? 0.3 : kind == "moons" ? 0.1 : kind == "tokens" ? 0.0 : 0.5;
  const double noise = spec_double(spec, "noise", default_noise);
  if (!std::isfinite(noise) || noise < 0)
    throw DataError(fmt::format("spec '{}': noise must be a finite number >= 0, got {}",
                                spec.text, noise));
  const std::string part = spec.get("part", "train");
  if (part != "train" && part != "test")
    throw DataError(fmt::format("spec '{}': part '{}' is unknown (use part=train or part=test)",
                                spec.text, part));
  const long dim = spec_int(spec, "d", 3);
  if (dim < 1) throw DataError(fmt::format("spec '{}': d must be >= 1, got {}", spec.text, dim));
  const long length = spec_int(spec, "length", 12), vocab = spec_int(spec, "vocab", 10);
  if (length < 2 || vocab < 3)
    throw DataError(fmt::format("spec '{}': tokens need length >= 2 and vocab >= 3, got {} and {}", spec.text,
                                length, vocab));
  if (kind == "tokens" && noise > 1)
    throw DataError(fmt::format("spec '{}': noise is the label flip probability for tokens, in [0, 1], got {}",
                                spec.text, noise));

  const bool test = part == "test";
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(
      derive_seed(static_cast<uint64_t>(seed), test ? 1 : 0));
  Dataset d;
  if (kind == "sine") {
    sine(d, n, noise, test, gen);
  } else if (kind == "moons") {
    moons(d, n, noise, gen);
  } else if (kind == "tokens") {
    tokens(d, n, length, vocab, noise, gen);
  } else {
    linear(d, n, dim, noise, static_cast<uint64_t>(seed), gen);
  }
  d.x = d.x.to(options.dtype).contiguous();
  if (d.task == Task::Regression) d.y = d.y.to(options.dtype).contiguous();
  d.standardize_inputs = kind != "tokens";  // token ids are names, not measurements
  return d;
}

}  // namespace credence::data_detail
