// Low-rank curvature: top eigenpairs by block subspace iteration on curvature-matrix products.
#include <ATen/ATen.h>
#include <fmt/format.h>

#include "credence/core/error.h"
#include "credence/core/rng.h"
#include "credence/curvature/curvature.h"

namespace credence {
namespace {

// H V for V [K, m], one pass over the data. Targets sampled for MC are keyed per batch, so every
// pass uses the same curvature matrix.
torch::Tensor curvature_times(const Model& model, const Likelihood& unit, const ParamSubset& subset,
                              const torch::Tensor& theta, const Dataset& data, CurvatureKind kind,
                              const torch::Tensor& V, int64_t batch_size, uint64_t seed, Curvature* stats) {
  auto HV = at::zeros_like(V);
  for (int64_t start = 0; start < data.size(); start += batch_size) {
    int64_t m = std::min(batch_size, data.size() - start);
    auto factors = curvature_factors(model, unit, subset, theta, data.x.narrow(0, start, m),
                                     data.y.narrow(0, start, m), kind, rng_key(seed, Stream::Noise, start), stats);
    at::NoGradGuard no_grad;
    torch::Tensor JV;
    for (size_t i = 0; i < factors.size(); ++i) {
      const auto& l = subset.layers[i];
      auto part = l.jacobian_times(factors[i].a, factors[i].g, V.narrow(0, l.offset, l.size()));
      JV = JV.defined() ? JV + part : part;
    }
    for (size_t i = 0; i < factors.size(); ++i) {
      const auto& l = subset.layers[i];
      HV.narrow(0, l.offset, l.size()).add_(l.jacobian_transpose_times(factors[i].a, factors[i].g, JV));
    }
  }
  return HV;
}

}  // namespace

Curvature compute_lowrank_curvature(const Model& model, const Likelihood& likelihood, const ParamSubset& subset,
                                    const torch::Tensor& theta, const Dataset& data, CurvatureKind kind,
                                    int64_t rank, int64_t iterations, int64_t batch_size, uint64_t seed) {
  const int64_t K = subset.size;
  if (rank < 1 || rank > K)
    throw InvalidArgument(fmt::format("hessian=lowrank:{} needs 1 <= K <= {} (the subset's size)", rank, K));
  Curvature c;
  c.structure = Structure::LowRank;
  c.kind = kind;
  c.n = data.size();
  if (likelihood.kind == LikelihoodKind::Gaussian) c.noise_power = kind == CurvatureKind::EF ? 4 : 2;
  Likelihood unit = likelihood;
  unit.sigma = 1.0;
  const int64_t m = std::min(K, rank + 10);  // oversampling sharpens the top eigenpairs
  auto V = keyed_randn({K, m}, rng_key(seed, Stream::Init, 7), theta.options());
  V = std::get<0>(at::linalg_qr(V.to(at::kDouble))).to(theta.scalar_type());
  for (int64_t it = 0; it < iterations; ++it) {
    auto HV = curvature_times(model, unit, subset, theta, data, kind, V, batch_size, seed, nullptr);
    V = std::get<0>(at::linalg_qr(HV.to(at::kDouble))).to(theta.scalar_type());
  }
  auto HV = curvature_times(model, unit, subset, theta, data, kind, V, batch_size, seed, &c);
  // Rayleigh-Ritz on the subspace: eigenpairs of V^T H V.
  auto T = V.t().mm(HV).to(at::kDouble);
  auto [vals, vecs] = at::linalg_eigh(0.5 * (T + T.t()));
  auto top = at::arange(m - 1, m - 1 - rank, -1, vals.options().dtype(at::kLong));
  c.lowrank_values = vals.index_select(0, top).clamp_min(0).to(theta.scalar_type());
  c.lowrank_vectors = V.mm(vecs.index_select(1, top).to(theta.scalar_type()));
  return c;
}

}  // namespace credence
