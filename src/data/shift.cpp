// shift=rotate:DEG | noise:SD for image specs: shifted copies of real data, to measure how
// methods behave under distribution shift.
#include <ATen/ATen.h>
#include <fmt/format.h>

#include <cmath>

#include "credence/core/error.h"
#include "credence/core/rng.h"
#include "loaders.h"

namespace credence::data_detail {

namespace {

constexpr double kPi = 3.14159265358979323846;

/// Counter-clockwise (as displayed) rotation about the image centre, bilinear, zero outside.
at::Tensor rotate(const at::Tensor& x, double degrees) {
  const double a = degrees * kPi / 180.0, c = std::cos(a), s = std::sin(a);
  // affine_grid maps each output location (x right, y down, in [-1, 1]) to where it samples.
  at::Tensor theta = at::tensor({c, -s, 0.0, s, c, 0.0}, x.options()).reshape({1, 2, 3});
  at::Tensor grid = at::affine_grid_generator(theta.expand({x.size(0), 2, 3}), x.sizes(),
                                              /*align_corners=*/false);
  return at::grid_sampler_2d(x, grid, /*bilinear*/ 0, /*zeros*/ 0, /*align_corners=*/false);
}

}  // namespace

at::Tensor shift_images(const Spec& spec, const at::Tensor& x) {
  if (!spec.has("shift")) return x;
  const std::string value = spec.get("shift", "");
  const size_t colon = value.find(':');
  const std::string kind = trim(value.substr(0, colon));
  double amount = 0;
  if (colon == std::string::npos || (kind != "rotate" && kind != "noise") ||
      !parse_number(trim(value.substr(colon + 1)), amount) || !std::isfinite(amount) ||
      (kind == "noise" && amount < 0))
    throw DataError(
        fmt::format("spec '{}': shift '{}' must be rotate:DEG or noise:SD with SD >= 0 "
                    "(e.g. 'shift=rotate:30' or 'shift=noise:0.2')",
                    spec.text, value));
  if (x.dim() != 4) throw DataError(fmt::format("spec '{}': shift needs images [N, C, H, W]", spec.text));
  if (kind == "rotate") return rotate(x, amount);
  // A fixed seed: the same spec always gives the same corrupted set.
  at::Tensor noise = keyed_randn(x.sizes(), rng_key(0, Stream::Noise), x.options());
  return (x + amount * noise).clamp(0.0, 1.0);
}

}  // namespace credence::data_detail
