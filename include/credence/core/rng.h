#pragma once
/// Random numbers keyed by (seed, stream, step, index) rather than by call order, so that a run
/// split across processes or devices draws exactly what the single-process run draws.
#include <ATen/core/Generator.h>
#include <torch/types.h>

#include <cstdint>

namespace credence {

/// What a random draw is for; part of the key so that streams never collide.
enum class Stream : uint64_t { Init = 1, Shuffle = 2, Noise = 3, Sample = 4, Holdout = 5 };

/// A 64-bit key from its parts (splitmix64 chain); any change in any part changes the key.
uint64_t rng_key(uint64_t seed, Stream stream, uint64_t step = 0, uint64_t index = 0);
/// A fresh CPU generator seeded with `key`.
at::Generator cpu_generator(uint64_t key);
/// Standard normal draws for `key`, generated on the CPU (device-independent) then moved.
torch::Tensor keyed_randn(at::IntArrayRef shape, uint64_t key, const torch::TensorOptions& options);
/// A random permutation of 0..n-1 for `key` (int64, CPU).
torch::Tensor keyed_permutation(int64_t n, uint64_t key);

}  // namespace credence
