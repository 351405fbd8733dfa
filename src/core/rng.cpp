#include "credence/core/rng.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

namespace credence {
namespace {
uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}
}  // namespace

uint64_t rng_key(uint64_t seed, Stream stream, uint64_t step, uint64_t index) {
  uint64_t k = splitmix64(seed);
  k = splitmix64(k ^ static_cast<uint64_t>(stream));
  k = splitmix64(k ^ step);
  return splitmix64(k ^ index);
}

at::Generator cpu_generator(uint64_t key) { return at::make_generator<at::CPUGeneratorImpl>(key); }

torch::Tensor keyed_randn(at::IntArrayRef shape, uint64_t key, const torch::TensorOptions& options) {
  auto gen = cpu_generator(key);
  auto t = at::randn(shape, gen, options.device(torch::kCPU));
  return t.to(options.device());
}

torch::Tensor keyed_permutation(int64_t n, uint64_t key) {
  auto gen = cpu_generator(key);
  return at::randperm(n, gen, torch::TensorOptions().dtype(torch::kLong));
}

}  // namespace credence
