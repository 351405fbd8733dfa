#include "credence/curvature/curvature.h"

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <fmt/format.h>
#include <torch/csrc/autograd/autograd.h>

#include <dlfcn.h>

#include <algorithm>
#include <climits>

#include "credence/core/distributed.h"
#include "credence/core/error.h"
#include "credence/core/progress.h"
#include "credence/core/runtime.h"
#include "credence/core/rng.h"
#include "credence/core/spec.h"

namespace credence {
namespace {
// CBLAS's symmetric rank-k update, found in the BLAS that LibTorch already loaded; ATen has no
// syrk, and a Gram through it costs half the products of a GEMM.
enum { kRowMajor = 101, kUpper = 121, kTrans = 112 };  // CBLAS_ORDER, CBLAS_UPLO, CBLAS_TRANSPOSE
using SyrkS = void (*)(int, int, int, int, int, float, const float*, int, float, float*, int);
using SyrkD = void (*)(int, int, int, int, int, double, const double*, int, double, double*, int);

template <typename F>
F blas_symbol(const char* name) {
  return reinterpret_cast<F>(dlsym(RTLD_DEFAULT, name));
}
}  // namespace

void add_gram_upper(torch::Tensor& S, const torch::Tensor& X) {
  static const auto syrk_s = blas_symbol<SyrkS>("cblas_ssyrk");
  static const auto syrk_d = blas_symbol<SyrkD>("cblas_dsyrk");
  const auto t = S.scalar_type();
  const bool blas = S.device().is_cpu() && X.device().is_cpu() && X.scalar_type() == t && S.is_contiguous() &&
                    S.dim() == 2 && X.dim() == 2 && S.size(0) == X.size(1) && S.size(1) == X.size(1) &&
                    X.size(0) <= INT32_MAX && X.size(1) <= INT32_MAX &&
                    ((t == at::kFloat && syrk_s) || (t == at::kDouble && syrk_d));
  // Narrow Grams (a few outputs over many rows) are faster as one GEMM.
  constexpr int64_t kSyrkMinWidth = 64;
  if (!blas || X.size(0) == 0 || X.size(1) < kSyrkMinWidth) {
    S.addmm_(X.t(), X);
    return;
  }
  auto Xc = X.contiguous();
  const int d = static_cast<int>(X.size(1)), rows = static_cast<int>(X.size(0));
  if (t == at::kFloat)
    syrk_s(kRowMajor, kUpper, kTrans, d, rows, 1.0f, Xc.data_ptr<float>(), d, 1.0f, S.data_ptr<float>(), d);
  else
    syrk_d(kRowMajor, kUpper, kTrans, d, rows, 1.0, Xc.data_ptr<double>(), d, 1.0, S.data_ptr<double>(), d);
}

// In place, in tiles: no K x K temporaries.
void symmetrize_from_upper(torch::Tensor& S) {
  const auto t = S.scalar_type();
  if (S.numel() == 0 || !S.device().is_cpu() || !S.is_contiguous() || (t != at::kFloat && t != at::kDouble)) return;
  constexpr int64_t kTile = 64;
  const int64_t n = S.size(0);
  AT_DISPATCH_FLOATING_TYPES(t, "symmetrize_from_upper", [&] {
    scalar_t* p = S.data_ptr<scalar_t>();
    for (int64_t i0 = 0; i0 < n; i0 += kTile)
      for (int64_t j0 = 0; j0 <= i0; j0 += kTile)
        for (int64_t i = i0; i < std::min(n, i0 + kTile); ++i)
          for (int64_t j = j0; j < std::min(i, j0 + kTile); ++j) p[i * n + j] = p[j * n + i];
  });
}

CurvatureKind parse_curvature_kind(const std::string& name) {
  if (name == "ggn") return CurvatureKind::GGN;
  if (name == "ef") return CurvatureKind::EF;
  if (name == "mc") return CurvatureKind::MC;
  throw InvalidArgument(fmt::format("unknown curvature '{}' (known: ggn, ef, mc)", name));
}

KfacSharing parse_kfac_sharing(const std::string& name) {
  if (name == "expand") return KfacSharing::Expand;
  if (name == "reduce") return KfacSharing::Reduce;
  throw InvalidArgument(fmt::format("unknown kfac '{}' (known: expand, reduce)", name));
}

Structure parse_structure(const std::string& name, int64_t* rank) {
  if (name.rfind("lowrank:", 0) == 0) {
    long k = parse_int(name.substr(8), "hessian=lowrank:K");
    if (k < 1) throw InvalidArgument(fmt::format("hessian={}: K must be >= 1", name));
    if (rank) *rank = k;
    return Structure::LowRank;
  }
  if (name == "diag") return Structure::Diag;
  if (name == "kron") return Structure::Kron;
  if (name == "full") return Structure::Full;
  throw InvalidArgument(fmt::format("unknown hessian structure '{}' (known: diag, kron, full, lowrank:K)", name));
}

torch::Tensor Curvature::dense() const {
  if (structure == Structure::Full) return full;
  if (structure == Structure::Diag) return at::diag(diag);
  if (structure == Structure::LowRank) return (lowrank_vectors * lowrank_values).mm(lowrank_vectors.t());
  int64_t K = 0;
  for (const auto& b : kron) K = std::max(K, b.offset + b.out * b.in);
  auto H = at::zeros({K, K}, kron.front().A.options());
  for (const auto& b : kron) {
    int64_t m = b.out * b.in;
    H.narrow(0, b.offset, m).narrow(1, b.offset, m).copy_(at::kron(b.A, b.B));
  }
  return H;
}

std::vector<LayerFactors> layer_factors(const Model& model, const ParamSubset& subset, const torch::Tensor& theta,
                                        const torch::Tensor& x, const torch::Tensor& directions,
                                        torch::Tensor* outputs) {
  return layer_factors(model, subset, theta, x, OutputDirections([&](const torch::Tensor&) { return directions; }),
                       outputs);
}

std::vector<LayerFactors> layer_factors(const Model& model, const ParamSubset& subset, const torch::Tensor& theta,
                                        const torch::Tensor& x, const OutputDirections& directions,
                                        torch::Tensor* outputs) {
  std::vector<LayerFactors> out;
  if (subset.last_layer) {
    // The last layer's pre-activation is the output itself: g is the directions.
    at::NoGradGuard no_grad;
    const auto& l = subset.layers.front();
    auto parts = theta.split_with_sizes(model.layout().numels());
    auto a = model.require<LastLayerAccess>("last-layer curvature").features(x, theta);
    auto f = at::linear(a, parts[l.weight_block].view({l.out, l.in}), parts[l.bias_block]);
    if (outputs) *outputs = f;
    out.push_back({a, directions(f).transpose(1, 2)});
    return out;
  }
  if (const auto* jacobian = theta.dim() == 1 ? model.find<LayerJacobian>() : nullptr) {
    ForwardTrace trace;
    std::vector<torch::Tensor> grads;
    auto f = jacobian->forward_jacobian(x, theta.detach(), directions, trace, grads);
    for (const auto& l : subset.layers) out.push_back({trace.inputs[l.model_layer], grads[l.model_layer]});
    if (outputs) *outputs = f;
    return out;
  }
  auto th = theta.detach().requires_grad_(true);
  ForwardTrace trace;
  auto f = model.forward(x, th, &trace);
  if (trace.outputs.empty())
    throw NotSupported(fmt::format("model '{}' does not expose its layers; use subset=last_layer", model.spec()));
  std::vector<torch::Tensor> pre;
  for (const auto& l : subset.layers) pre.push_back(trace.outputs[l.model_layer]);
  const auto dirs = directions(f.detach());
  const int64_t D = dirs.size(2);
  std::vector<std::vector<torch::Tensor>> grads(subset.layers.size());
  for (int64_t d = 0; d < D; ++d) {
    auto g = torch::autograd::grad({f}, pre, {dirs.select(2, d)}, /*retain_graph=*/true,
                                   /*create_graph=*/false, /*allow_unused=*/true);
    for (size_t i = 0; i < pre.size(); ++i)
      grads[i].push_back(g[i].defined() ? g[i] : at::zeros_like(pre[i]));
  }
  for (size_t i = 0; i < subset.layers.size(); ++i) {
    auto a = trace.inputs[subset.layers[i].model_layer];
    auto g = at::stack(grads[i], 1);  // [n, D, out], [n, D, T, out] or images [n, D, out, H, W]
    if (g.dim() == 5) g = g.flatten(3).transpose(2, 3);
    if (a.defined() && a.dim() == 4) a = a.flatten(2).transpose(1, 2);
    if (subset.layers[i].kind != LayerKind::Dense && g.dim() == 3) {  // always with positions
      g = g.unsqueeze(2);
      if (a.defined()) a = a.unsqueeze(1);
    }
    out.push_back({a.defined() ? a.detach() : a, g});
  }
  if (outputs) *outputs = f.detach();
  return out;
}

namespace {
// A target per example drawn from the model's predictive at outputs f (Gaussian at unit noise).
torch::Tensor sample_targets(const Likelihood& lik, const torch::Tensor& f, uint64_t key) {
  auto gen = cpu_generator(key);
  auto fc = f.detach().to(at::kCPU);
  torch::Tensor y;
  switch (lik.kind) {
    case LikelihoodKind::Gaussian: y = fc.select(1, 0) + at::randn({fc.size(0)}, gen, fc.options()); break;
    case LikelihoodKind::Heteroscedastic:
      y = fc.select(1, 0) + (at::softplus(fc.select(1, 1)) + 1e-6).sqrt() * at::randn({fc.size(0)}, gen, fc.options());
      break;
    case LikelihoodKind::Categorical: y = at::multinomial(at::softmax(fc, 1), 1, true, gen).squeeze(1); break;
    case LikelihoodKind::Bernoulli: y = at::bernoulli(at::sigmoid(fc.select(1, 0)), gen).to(at::kLong); break;
  }
  return y.to(f.device());
}
}  // namespace

torch::Tensor output_factors(const Likelihood& lik, const torch::Tensor& f, const torch::Tensor& y,
                             CurvatureKind kind, uint64_t key) {
  if (kind == CurvatureKind::MC) return output_factors(lik, f, sample_targets(lik, f, key), CurvatureKind::EF);
  const int64_t n = f.size(0);
  switch (lik.kind) {
    case LikelihoodKind::Gaussian:
      if (kind == CurvatureKind::GGN) return at::ones({n, 1, 1}, f.options());
      return (f.select(1, 0) - y).view({n, 1, 1});
    case LikelihoodKind::Heteroscedastic: {
      auto mu = f.select(1, 0), r = f.select(1, 1);
      auto v = at::softplus(r) + 1e-6, dv = at::sigmoid(r);
      if (kind == CurvatureKind::GGN) {  // Fisher in (mean, raw variance): diag(1/v, dv^2 / (2 v^2))
        auto L = at::zeros({n, 2, 2}, f.options());
        L.select(2, 0).select(1, 0).copy_(v.rsqrt());
        L.select(2, 1).select(1, 1).copy_(dv / (v * std::sqrt(2.0)));
        return L;
      }
      auto r2 = (mu - y).pow(2);
      return at::stack({(mu - y) / v, 0.5 * (1 / v - r2 / (v * v)) * dv}, 1).unsqueeze(2);
    }
    case LikelihoodKind::Categorical: {
      auto p = at::softmax(f, 1);
      if (kind == CurvatureKind::GGN) {  // L L^T = diag(p) - p p^T with L = diag(sqrt p) - p sqrt(p)^T
        auto s = p.sqrt();
        return at::diag_embed(s) - p.unsqueeze(2) * s.unsqueeze(1);
      }
      return (p - at::one_hot(y, f.size(1)).to(f.scalar_type())).unsqueeze(2);
    }
    case LikelihoodKind::Bernoulli: {
      auto q = at::sigmoid(f.select(1, 0));
      if (kind == CurvatureKind::GGN) return (q * (1 - q)).sqrt().view({n, 1, 1});
      return (q - y.to(q.scalar_type())).view({n, 1, 1});
    }
  }
  return {};
}

torch::Tensor subset_jacobian(const ParamSubset& subset, const std::vector<LayerFactors>& factors) {
  const auto& g0 = factors.front().g;
  auto J = at::empty({g0.size(0), g0.size(1), subset.size}, g0.options());
  int64_t column = 0;
  for (size_t i = 0; i < factors.size(); ++i) {
    const auto& l = subset.layers[i];
    l.jacobian_columns_into(factors[i].a, factors[i].g, J.narrow(2, column, l.size()));
    column += l.size();
  }
  return J;
}

std::vector<LayerFactors> curvature_factors(const Model& model, const Likelihood& unit, const ParamSubset& subset,
                                            const torch::Tensor& theta, const torch::Tensor& x, const torch::Tensor& y,
                                            CurvatureKind kind, uint64_t key, Curvature* stats) {
  // One forward pass gives the outputs, the output factors at them and the directions to
  // backpropagate. For the last layer they are its pre-activation gradients: the pass stops at the
  // features.
  torch::Tensor f;
  auto factors = layer_factors(model, subset, theta, x, OutputDirections([&](const torch::Tensor& outputs) {
                                 f = outputs;
                                 return output_factors(unit, outputs, y, kind, key);
                               }));
  if (stats) {
    at::NoGradGuard no_grad;
    stats->nll += unit.nll(f, y).item<double>();
    if (unit.kind == LikelihoodKind::Gaussian) stats->sum_sq_residual += (f.select(1, 0) - y).pow(2).sum().item<double>();
  }
  return factors;
}

namespace {
// The exact curvature of one whole dense layer (no positions) from D > 1 output directions per
// example, without per-example Jacobian rows: its (o, o') block is sum_n Lambda_n[o, o'] ab_n ab_n^T
// with Lambda_n = g_n^T g_n [out, out] and ab_n the input with a trailing 1 for the bias. That is
// `out` products of [in + 1, m] x [m, (out - o) (in + 1)] where the rows take m D K^2 multiplies.
// Adds into `sums` [out, out, in + 1, in + 1] (blocks o <= o' only).
void add_weighted_grams(torch::Tensor& sums, const SubsetLayer& l, const torch::Tensor& a, const torch::Tensor& g) {
  auto ab = l.with_bias_input(a);
  const int64_t m = ab.size(0), out = g.size(2), in1 = ab.size(1);
  auto lambda = g.transpose(1, 2).bmm(g);  // [m, out, out]
  for (int64_t o = 0; o < out; ++o) {
    auto w = lambda.select(1, o).narrow(1, o, out - o);                   // [m, out - o]
    auto x = (w.unsqueeze(2) * ab.unsqueeze(1)).reshape({m, -1});          // [m, (out - o) (in + 1)]
    sums.select(0, o).narrow(0, o, out - o).add_(ab.t().mm(x).view({in1, out - o, in1}).transpose(0, 1));
  }
}

// The blocks of add_weighted_grams added to `full` at the layer's entries (SubsetLayer::entry_index).
void place_weighted_grams(torch::Tensor& full, torch::Tensor sums, const SubsetLayer& l) {
  const int64_t out = sums.size(0);
  for (int64_t o = 0; o < out; ++o)  // mirror the upper blocks
    for (int64_t p = o + 1; p < out; ++p) sums[p][o].copy_(sums[o][p].t());
  auto idx = l.entry_index(full.device()).reshape({-1});
  auto H = sums.permute({0, 2, 1, 3}).reshape({idx.numel(), idx.numel()});  // [(o, i), (o', j)]
  full.index_put_({idx.unsqueeze(1), idx.unsqueeze(0)}, H, /*accumulate=*/true);
}

// sum_d g[n, d, o]^2 for a contiguous CPU [m, D, out] tensor in one pass over g, without the
// [m, D, out] tensor of squares that g.pow(2).sum(1) writes and reads again.
template <typename T>
void add_squares_over_directions(const T* g, T* out, int64_t m, int64_t D, int64_t width) {
  for (int64_t n = 0; n < m; ++n) {
    T* row = out + n * width;
    for (int64_t d = 0; d < D; ++d) {
      const T* v = g + (n * D + d) * width;
      for (int64_t o = 0; o < width; ++o) row[o] += v[o] * v[o];
    }
  }
}

torch::Tensor squares_over_directions(const torch::Tensor& g) {
  if (!g.device().is_cpu() || g.dim() != 3 || !(g.scalar_type() == at::kFloat || g.scalar_type() == at::kDouble))
    return g.pow(2).sum(1);
  auto gc = g.contiguous();
  auto out = at::zeros({gc.size(0), gc.size(2)}, gc.options());
  if (gc.scalar_type() == at::kFloat)
    add_squares_over_directions(gc.data_ptr<float>(), out.data_ptr<float>(), gc.size(0), gc.size(1), gc.size(2));
  else
    add_squares_over_directions(gc.data_ptr<double>(), out.data_ptr<double>(), gc.size(0), gc.size(1), gc.size(2));
  return out;
}

// Rows per chunk of the curvature pass: at most `batch_size`, fewer where one row's layer factors
// are large (a convolution's hold every position's patch and every direction's gradient), so that a
// chunk's factors stay near kChunkBytes. Sized from one row, alike on every rank.
int64_t curvature_chunk_rows(const Model& model, const Likelihood& unit, const ParamSubset& subset,
                             const torch::Tensor& theta, const Dataset& data, CurvatureKind kind, int64_t batch_size) {
  constexpr double kChunkBytes = 256e6;
  if (data.size() == 0 || batch_size <= 1) return std::max<int64_t>(1, batch_size);
  double bytes = 0;
  for (const auto& f : curvature_factors(model, unit, subset, theta, data.x.narrow(0, 0, 1), data.y.narrow(0, 0, 1),
                                         kind, 0, nullptr))
    bytes += static_cast<double>((f.a.defined() ? f.a.numel() : 0) + f.g.numel()) * f.g.element_size();
  return std::clamp<int64_t>(static_cast<int64_t>(kChunkBytes / std::max(bytes, 1.0)), 1, batch_size);
}
}  // namespace

Curvature compute_curvature(const Model& model, const Likelihood& likelihood, const ParamSubset& subset,
                            const torch::Tensor& theta, const Dataset& data, Structure structure,
                            CurvatureKind kind, int64_t batch_size, uint64_t seed, const Communicator* comm,
                            KfacSharing sharing) {
  if (structure == Structure::LowRank)
    throw InvalidArgument("compute_curvature: use compute_lowrank_curvature for hessian=lowrank:K");
  const int64_t K = subset.size;
  auto opts = theta.options();
  if (structure == Structure::Full && double(K) * K * theta.element_size() > kMaxDenseBytes)
    throw NotSupported(fmt::format(
        "hessian=full over {} parameters needs a {} x {} matrix ({:.1f} GB); use hessian=kron, hessian=diag, "
        "or subset=last_layer",
        K, K, K, double(K) * K * theta.element_size() / 1e9));
  // H, the posterior precision, its Cholesky factor and the covariance are all K x K.
  if (structure == Structure::Full)
    check_memory(4.0 * K * K * theta.element_size(), fmt::format("hessian=full over {} parameters", K),
                 "use hessian=kron, hessian=diag, hessian=lowrank:K or subset=last_layer");
  if (structure == Structure::Kron && subset.partial())
    throw NotSupported(fmt::format("subset '{}' covers parts of layers; use hessian=full or hessian=diag", subset.spec));
  Curvature c;
  c.structure = structure;
  c.kind = kind;
  c.n = data.size();
  if (likelihood.kind == LikelihoodKind::Gaussian) c.noise_power = kind == CurvatureKind::EF ? 4 : 2;
  Likelihood unit = likelihood;
  unit.sigma = 1.0;
  // Kron: A is the output side (a Scale or Shift layer's exact weight block), Ab a Scale layer's
  // bias block, B the input side summed over `count` inputs.
  const size_t L = subset.layers.size();
  std::vector<torch::Tensor> A(L), Ab(L), B(L);
  auto count = at::zeros({static_cast<int64_t>(L)}, opts.dtype(at::kDouble));
  if (structure == Structure::Full) c.full = at::zeros({K, K}, opts);
  if (structure == Structure::Diag) c.diag = at::zeros({K}, opts);
  const int64_t ranks = comm ? comm->world_size() : 1, rank = comm ? comm->rank() : 0;
  if (structure == Structure::Kron)  // a rank may get no chunk
    for (size_t i = 0; i < L; ++i) {
      const auto& l = subset.layers[i];
      A[i] = at::zeros({l.out, l.out}, opts);
      B[i] = at::zeros({l.in, l.in}, opts);
      const int64_t nb = l.kind != LayerKind::Dense && l.bias_block >= 0 ? l.out : 0;
      Ab[i] = at::zeros({nb, nb}, opts);
    }
  const auto& first = subset.layers.front();
  const bool gram_sums = structure == Structure::Full && L == 1 && first.kind == LayerKind::Dense && !first.partial();
  torch::Tensor sums;  // gram_sums: [out, out, in + 1, in + 1]
  // Long dense passes show progress on a terminal (the display stays silent elsewhere).
  const bool long_pass = structure == Structure::Full && double(K) * K * theta.element_size() > 2.5e8;
  batch_size = curvature_chunk_rows(model, unit, subset, theta, data, kind, batch_size);
  Progress progress("curvature", (data.size() + batch_size - 1) / batch_size, /*quiet=*/!long_pass);
  // Chunks are keyed by their start, so a rank draws what one process draws for them.
  for (int64_t start = rank * batch_size; start < data.size(); start += ranks * batch_size) {
    progress.update(start / batch_size + 1);
    int64_t m = std::min(batch_size, data.size() - start);
    auto x = data.x.narrow(0, start, m), y = data.y.narrow(0, start, m);
    auto factors = curvature_factors(model, unit, subset, theta, x, y, kind, rng_key(seed, Stream::Noise, start), &c);
    at::NoGradGuard no_grad;
    bool jacobian_rows = false;  // Full: the subset's per-(example, direction) Jacobian rows
    for (size_t i = 0; i < factors.size(); ++i) {
      const auto& l = subset.layers[i];
      auto a = factors[i].a;
      auto g = factors[i].g;  // [m, D, out] or [m, D, T, out]
      const bool shared = SubsetLayer::shared(g);
      if (structure == Structure::Kron && l.kind != LayerKind::Dense) {  // exact blocks: few entries
        auto J = l.jacobian_columns(a, g).reshape({-1, l.size()});
        auto Jw = J.narrow(1, 0, l.num_weights()), Jb = J.narrow(1, l.num_weights(), l.num_biases());
        add_gram_upper(A[i], Jw);
        add_gram_upper(Ab[i], Jb);
      } else if (structure == Structure::Kron) {
        if (shared && sharing == KfacSharing::Reduce) {
          a = a.mean(1);
          g = g.sum(2);
        }
        auto gg = g.reshape({-1, l.out}), aa = a.reshape({-1, l.in});
        add_gram_upper(A[i], gg);
        add_gram_upper(B[i], aa);
        count[i] += aa.size(0);
      } else if (structure == Structure::Diag && (l.partial() || shared || l.kind != LayerKind::Dense)) {
        // Per-example columns, a slice of examples at a time to bound their memory.
        const int64_t per = std::max<int64_t>(1, (int64_t(1) << 24) / std::max<int64_t>(1, g.size(1) * l.size()));
        for (int64_t s0 = 0; s0 < m; s0 += per) {
          const int64_t k = std::min(per, m - s0);
          auto J = l.jacobian_columns(a.defined() ? a.narrow(0, s0, k) : a, g.narrow(0, s0, k));
          c.diag.narrow(0, l.offset, l.size()).add_(J.pow(2).sum(at::IntArrayRef{0, 1}));
        }
      } else if (structure == Structure::Diag) {
        auto g2 = squares_over_directions(g);  // [m, out]
        c.diag.narrow(0, l.offset, l.out * l.in).add_(g2.t().mm(a.pow(2)).reshape({-1}));
        if (l.bias_block >= 0) c.diag.narrow(0, l.offset + l.out * l.in, l.out).add_(g2.sum(0));
      } else if (gram_sums && !shared && g.size(1) > 1) {
        const int64_t in1 = l.in + (l.bias_block >= 0 ? 1 : 0);
        if (!sums.defined()) sums = at::zeros({l.out, l.out, in1, in1}, opts);
        add_weighted_grams(sums, l, a, g);
      } else {
        jacobian_rows = true;  // every layer's (the weighted Grams serve only a one-layer subset)
      }
    }
    if (jacobian_rows) {
      auto G = subset_jacobian(subset, factors).view({-1, K});
      add_gram_upper(c.full, G);
    }
  }
  for (auto* part : {&A, &Ab, &B})
    for (auto& t : *part)
      if (t.defined()) symmetrize_from_upper(t);
  if (c.full.defined()) symmetrize_from_upper(c.full);
  if (sums.defined()) place_weighted_grams(c.full, sums, first);
  if (ranks > 1) {
    auto stats = at::tensor({c.nll, c.sum_sq_residual}, at::kDouble);
    std::vector<torch::Tensor> sums = {c.full, c.diag, stats, count};
    for (auto* part : {&A, &Ab, &B})
      for (const auto& t : *part)
        if (t.numel() > 0) sums.push_back(t);
    comm->all_reduce_sum(sums);
    c.nll = stats[0].item<double>();
    c.sum_sq_residual = stats[1].item<double>();
  }
  if (structure == Structure::Kron) {
    auto one = at::ones({1, 1}, opts);
    for (size_t i = 0; i < L; ++i) {
      const auto& l = subset.layers[i];
      if (l.kind != LayerKind::Dense) {
        c.kron.push_back({l.offset, l.out, 1, A[i], one});
        if (l.bias_block >= 0) c.kron.push_back({l.offset + l.out, l.out, 1, Ab[i], one});
        continue;
      }
      const double inputs = count[i].item<double>();
      c.kron.push_back({l.offset, l.out, l.in, A[i], inputs > 0 ? B[i] / inputs : B[i]});
      if (l.bias_block >= 0) c.kron.push_back({l.offset + l.out * l.in, l.out, 1, A[i], one});
    }
  }
  return c;
}

}  // namespace credence
