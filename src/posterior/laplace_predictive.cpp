// The linearized (GLM) predictive of the Laplace posterior, and its file format.
#include <ATen/ATen.h>
#include <fmt/format.h>

#include <cmath>

#include "credence/core/error.h"
#include "credence/core/rng.h"
#include "credence/posterior/laplace.h"

namespace credence {
namespace {
// out[n, c] = sum_k u[n, c, k] v[n, c, k] w[n, k] in one pass, without the [n, C, K] temporaries
// of (u * v * w).sum(-1).
template <typename T>
void weighted_dots(const T* u, const T* v, const T* w, T* out, int64_t n, int64_t C, int64_t K) {
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c = 0; c < C; ++c) {
      const T* x = u + (i * C + c) * K;
      const T* y = v + (i * C + c) * K;
      const T* s = w + i * K;
      T lane[8] = {};  // eight partial sums, which the compiler keeps in one vector register
      int64_t k = 0;
      for (; k + 8 <= K; k += 8)
        for (int j = 0; j < 8; ++j) lane[j] += x[k + j] * y[k + j] * s[k + j];
      T total = ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
      for (; k < K; ++k) total += x[k] * y[k] * s[k];
      out[i * C + c] = total;
    }
}

// sum_k u[n, c, k] v[n, c, k] w[n, k] for u, v [n, C, K] and w [n, K] (all ones when undefined).
torch::Tensor rowwise_dots(const torch::Tensor& u, const torch::Tensor& v, const torch::Tensor& w = {}) {
  const auto dtype = u.scalar_type();
  const bool fused = u.device().is_cpu() && u.dim() == 3 && (dtype == at::kFloat || dtype == at::kDouble) &&
                     v.scalar_type() == dtype && (!w.defined() || w.scalar_type() == dtype);
  if (!fused) return (w.defined() ? u * v * w.unsqueeze(1) : u * v).sum(-1);
  auto uc = u.contiguous(), vc = v.contiguous();
  auto wc = w.defined() ? w.contiguous() : at::ones({u.size(0), u.size(2)}, u.options());
  auto out = at::empty({uc.size(0), uc.size(1)}, uc.options());
  if (dtype == at::kFloat)
    weighted_dots(uc.data_ptr<float>(), vc.data_ptr<float>(), wc.data_ptr<float>(), out.data_ptr<float>(),
                  uc.size(0), uc.size(1), uc.size(2));
  else
    weighted_dots(uc.data_ptr<double>(), vc.data_ptr<double>(), wc.data_ptr<double>(), out.data_ptr<double>(),
                  uc.size(0), uc.size(1), uc.size(2));
  return out;
}

// sum_i u[n, c, i] u[n, d, i] s[n, i]: [n, C, C], or only its diagonal [n, C].
torch::Tensor weighted_gram(const torch::Tensor& u, const torch::Tensor& s, bool diag_only) {
  if (!diag_only) return (u * s.unsqueeze(1)).matmul(u.transpose(1, 2));
  return rowwise_dots(u, u, s);
}
}  // namespace

torch::Tensor LaplacePosterior::function_variance(const Model& model, const torch::Tensor& x, bool diag_only,
                                                  torch::Tensor* f_mu) const {
  // Layer factors of a convolution hold C x positions x channels values per row: over all weights,
  // rows go in slices sized from the first one's factors, so they stay small enough to reuse
  // memory instead of faulting in fresh pages for each pass.
  constexpr int64_t kFirstRows = 8;
  constexpr double kSliceBytes = 32e6;
  const int64_t n = x.size(0);
  if (subset_.last_layer || n <= kFirstRows) return slice_variance(model, x, diag_only, f_mu, nullptr);
  std::vector<torch::Tensor> vars, mus;
  for (int64_t start = 0, rows = kFirstRows; start < n;) {
    const int64_t m = std::min(rows, n - start);
    double bytes = 0;
    torch::Tensor mu;
    vars.push_back(slice_variance(model, x.narrow(0, start, m), diag_only, f_mu ? &mu : nullptr, &bytes));
    if (f_mu) mus.push_back(mu);
    start += m;
    rows = std::max<int64_t>(kFirstRows, static_cast<int64_t>(kSliceBytes / std::max(1.0, bytes / m)));
  }
  if (f_mu) *f_mu = at::cat(mus);
  return at::cat(vars);
}

torch::Tensor LaplacePosterior::slice_variance(const Model& model, const torch::Tensor& x, bool diag_only,
                                               torch::Tensor* f_mu, double* bytes) const {
  const int64_t n = x.size(0), C = model.output_dim();
  auto eye = at::eye(C, x.options()).expand({n, C, C});
  auto factors = layer_factors(model, subset_, theta_, x, eye, f_mu);
  if (bytes)
    for (const auto& f : factors)
      *bytes += static_cast<double>((f.a.defined() ? f.a.numel() : 0) + f.g.numel()) * f.g.element_size();
  at::NoGradGuard no_grad;
  auto fvar = diag_only ? at::zeros({n, C}, x.options()) : at::zeros({n, C, C}, x.options());
  if (curvature_.structure == Structure::Full && cov_blocks_.defined()) {
    // One dense layer: J_n's row c is sum_o g_nco (e_o (x) a_n), with a_n's trailing 1 for the bias,
    // so J Sigma J^T = g Q g^T with Q_n[o, o'] = a_n^T Sigma_oo' a_n; the last layer's g is I.
    const auto& g = factors.front().g;
    const int64_t out = cov_blocks_.size(0), in1 = cov_blocks_.size(2);
    auto ab = subset_.layers.front().with_bias_input(factors.front().a);
    if (subset_.last_layer && diag_only) {
      auto blocks = cov_blocks_.diagonal(0, 0, 1).permute({2, 0, 1}).reshape({out * in1, in1});  // [(o, i), j]
      return (ab.matmul(blocks.t()).view({n, out, in1}) * ab.unsqueeze(1)).sum(-1);
    }
    auto Q = at::empty({n, out, out}, ab.options());
    const int64_t per = std::max<int64_t>(1, static_cast<int64_t>(16e6 / double(out * out * in1)));
    for (int64_t s0 = 0; s0 < n; s0 += per) {  // slices of rows bound the [rows, out, out, in + 1] product
      auto part = ab.narrow(0, s0, std::min(per, n - s0));
      auto T = part.matmul(cov_blocks_.view({-1, in1}).t()).view({part.size(0), out, out, in1});
      Q.narrow(0, s0, part.size(0)).copy_((T * part.view({-1, 1, 1, in1})).sum(-1));
    }
    if (subset_.last_layer) return diag_only ? Q.diagonal(0, 1, 2) : Q;
    auto gQg = g.matmul(Q).matmul(g.transpose(1, 2));
    return diag_only ? gQg.diagonal(0, 1, 2) : gQg;
  }
  if (curvature_.structure == Structure::Full) {
    auto J = subset_jacobian(subset_, factors);  // [n, C, K] from factored a (x) g
    auto JS = J.matmul(cov_);
    return diag_only ? rowwise_dots(JS, J) : JS.matmul(J.transpose(1, 2));
  }
  if (curvature_.structure == Structure::LowRank) {
    // Sigma = D^{-1} - Z diag(S^2 / (1 + S^2)) Z^T with Z = D^{-1/2} Q.
    auto Z = lr_q_ / prior_.sqrt().unsqueeze(1);
    auto c = (lr_s2_ / (1 + lr_s2_)).expand({n, lr_s2_.size(0)});
    torch::Tensor JZ;
    for (size_t i = 0; i < factors.size(); ++i) {
      const auto& l = subset_.layers[i];
      const auto &a = factors[i].a, &g = factors[i].g;
      auto J = l.jacobian_columns(a, g);  // the prior part: J D^{-1} J^T
      fvar += weighted_gram(J, prior_.narrow(0, l.offset, l.size()).reciprocal().expand({n, l.size()}), diag_only);
      auto part = l.jacobian_times(a, g, Z.narrow(0, l.offset, l.size()));
      JZ = JZ.defined() ? JZ + part : part;
    }
    return fvar - weighted_gram(JZ, c, diag_only);
  }
  size_t block = 0;  // Kron: each layer's weight block, then its bias block when it has one
  for (size_t i = 0; i < factors.size(); ++i) {
    const auto& l = subset_.layers[i];
    const auto &a = factors[i].a, &g = factors[i].g;  // g [n, C, out] or with positions [n, C, T, out]
    const bool plain = l.kind == LayerKind::Dense && !SubsetLayer::shared(g);
    if (curvature_.structure == Structure::Diag && (l.partial() || !plain)) {
      auto J = l.jacobian_columns(a, g);  // [n, C, size]
      fvar += weighted_gram(J, diag_p_.narrow(0, l.offset, l.size()).reciprocal().expand({n, l.size()}), diag_only);
    } else if (curvature_.structure == Structure::Diag) {
      auto pw = diag_p_.narrow(0, l.offset, l.out * l.in).view({l.out, l.in});
      auto s = a.pow(2).matmul(pw.reciprocal().t());  // [n, out]
      if (l.bias_block >= 0) s = s + diag_p_.narrow(0, l.offset + l.out * l.in, l.out).reciprocal();
      fvar += weighted_gram(g, s, diag_only);
    } else if (plain) {  // Kron, one position: J's rows are g (x) a, rotated into the blocks' eigenbases
      auto s = a.matmul(vec_b_[block]).pow(2).matmul(block_var_t_[block]);  // [n, out]
      const bool bias = l.bias_block >= 0;
      if (bias && shares_a_[block + 1]) {  // the bias's columns are g's in the same basis
        s.add_(block_var_t_[block + 1].view({1, l.out}));
      } else if (bias) {
        auto sb = block_var_t_[block + 1].view({1, l.out}).expand({n, l.out});
        fvar += weighted_gram(g.matmul(vec_a_[block + 1]), sb, diag_only);
      }
      if (subset_.last_layer && (!bias || shares_a_[block + 1])) {  // g is the identity: u is Q_A itself
        const auto& q = vec_a_[block];
        fvar += diag_only ? s.matmul(q.pow(2).t()) : (q * s.unsqueeze(1)).matmul(q.t());
      } else {
        fvar += weighted_gram(g.matmul(vec_a_[block]), s, diag_only);
      }
      block += bias ? 2 : 1;
    } else if (l.kind == LayerKind::Dense) {
      // Kron with positions: J_c = sum_t g_ct (x) a_t; in the blocks' eigenbases that is
      // R_c = sum_t (g_ct Q_A)^T (a_t Q_B), [out, in] per example. Slices of examples keep R in cache.
      auto u = g.matmul(vec_a_[block]);  // [n, C, T, out]
      auto v = a.matmul(vec_b_[block]);  // [n, T, in]
      auto inv_w = block_d_[block].reciprocal().reshape({1, 1, -1});
      const int64_t per = std::max<int64_t>(1, (int64_t(1) << 21) / (C * l.out * l.in));
      for (int64_t s0 = 0; s0 < n; s0 += per) {
        const int64_t k = std::min(per, n - s0);
        // One [C * out, T] x [T, in] product per example.
        auto uk = u.narrow(0, s0, k).permute({0, 1, 3, 2}).reshape({k, C * l.out, -1});
        auto R = uk.bmm(v.narrow(0, s0, k)).view({k, C, -1});
        auto part = diag_only ? (R * R * inv_w).sum(-1) : (R * inv_w).bmm(R.transpose(1, 2));
        fvar.narrow(0, s0, k).add_(part);
      }
      if (l.bias_block >= 0) {
        auto ub = g.sum(2).matmul(vec_a_[block + 1]);  // the bias: sum_t g_ct
        fvar += weighted_gram(ub, block_d_[block + 1].reciprocal().view({1, l.out}).expand({n, l.out}), diag_only);
      }
      block += l.bias_block >= 0 ? 2 : 1;
    } else {  // exact Scale/Shift blocks: rotate the Jacobian columns
      auto J = l.jacobian_columns(a, g);
      for (int64_t start = 0; start < l.size(); ++block) {
        const auto& b = curvature_.kron[block];
        auto part = J.narrow(2, start, b.out * b.in).reshape({n, C, b.out, b.in});
        auto rotated = vec_a_[block].t().matmul(part).matmul(vec_b_[block]).reshape({n, C, b.out * b.in});
        fvar += weighted_gram(rotated, block_d_[block].reciprocal().reshape({1, -1}).expand({n, b.out * b.in}), diag_only);
        start += b.out * b.in;
      }
    }
  }
  return fvar;
}

Predictive LaplacePosterior::predict(const Model& model, const Likelihood& likelihood, const torch::Tensor& x,
                                     double y_mean, double y_std, const PredictOptions& options) const {
  if (predictive_type == LaplacePredictive::NN)
    return Posterior::predict(model, likelihood, x, y_mean, y_std, options);
  const bool probit = likelihood.task() == Task::Classification && link != GlmLink::MC;
  const bool diag_only = probit || likelihood.task() == Task::Regression;
  std::vector<torch::Tensor> mus, vars;
  for (int64_t start = 0; start < x.size(0); start += options.batch_size) {
    auto xb = x.narrow(0, start, std::min(options.batch_size, x.size(0) - start));
    torch::Tensor mu_b;
    vars.push_back(function_variance(model, xb, diag_only, &mu_b));
    mus.push_back(mu_b);
  }
  // One batch (a single example, say) needs no copy into a joined tensor.
  auto mu = mus.size() == 1 ? mus[0] : at::cat(mus), var = vars.size() == 1 ? vars[0] : at::cat(vars);
  return glm_predictive(mu, var, likelihood, link, sigma_, y_mean, y_std, options);
}

Predictive glm_predictive(const torch::Tensor& mu, const torch::Tensor& var, const Likelihood& likelihood, GlmLink link,
                          double sigma, double y_mean, double y_std, const PredictOptions& options) {
  const bool probit = likelihood.task() == Task::Classification && link != GlmLink::MC;
  Predictive p;
  p.task = likelihood.task();
  if (p.task == Task::Regression) {
    // Linearized over the mean output; the noise (or the heteroscedastic head at the MAP) adds on.
    auto noise = likelihood.kind == LikelihoodKind::Heteroscedastic
                     ? at::softplus(mu.select(1, 1)) + 1e-6
                     : at::full({mu.size(0)}, sigma * sigma, mu.options());
    p.mean = mu.select(1, 0) * y_std + y_mean;
    p.var = (var.select(1, 0) + noise) * (y_std * y_std);
    return p;
  }
  if (probit && link == GlmLink::Bridge && likelihood.kind == LikelihoodKind::Categorical) {
    // Laplace bridge: the Dirichlet whose logistic-normal approximation matches N(mu, diag var);
    // alpha_k = (1 - 2/C + e^{mu_k} sum_l e^{-mu_l} / C^2) / var_k. Its mean is the predictive.
    const double C = static_cast<double>(mu.size(1));
    auto cross = at::exp((mu + at::logsumexp(-mu, 1, true)).clamp_max(80.0));
    auto alpha = (1 - 2 / C + cross / (C * C)) / var.clamp_min(1e-12);
    p.probs = alpha / alpha.sum(1, true);
    return p;
  }
  if (probit) {
    auto kappa = (1 + M_PI / 8 * var).rsqrt();
    auto f = mu * kappa;
    if (likelihood.kind == LikelihoodKind::Bernoulli) {
      auto q = at::sigmoid(f.select(1, 0));
      p.probs = at::stack({1 - q, q}, 1);
    } else {
      p.probs = at::softmax(f, 1);
    }
    return p;
  }
  // MC over the linearized outputs: f ~ N(mu, J Sigma J^T).
  const int64_t S = options.samples, n = mu.size(0), C = mu.size(1);
  auto jitter = 1e-10 * at::eye(C, mu.options());
  auto L = at::linalg_cholesky((var + jitter).to(at::kDouble)).to(mu.scalar_type());  // see check_cholesky
  auto eps = keyed_randn({S, n, C, 1}, rng_key(options.seed, Stream::Sample, 1), mu.options());
  auto f = mu.unsqueeze(0) + L.unsqueeze(0).matmul(eps).squeeze(-1);
  return likelihood.predictive(f, y_mean, y_std);
}

void LaplacePosterior::save(TensorMap& tensors, nlohmann::json& meta) const {
  tensors["laplace.theta"] = theta_;
  tensors["laplace.prior"] = prior_;
  if (prior_mean_.defined()) tensors["laplace.prior_mean"] = prior_mean_;
  tensors["laplace.subset_index"] = subset_.index;
  const char* structure = curvature_.structure == Structure::Kron      ? "kron"
                          : curvature_.structure == Structure::Diag    ? "diag"
                          : curvature_.structure == Structure::LowRank ? "lowrank:1"
                                                                       : "full";
  nlohmann::json blocks = nlohmann::json::array();
  if (curvature_.structure == Structure::Full) tensors["laplace.full"] = curvature_.full;
  if (curvature_.structure == Structure::Diag) tensors["laplace.diag"] = curvature_.diag;
  if (curvature_.structure == Structure::LowRank) {
    tensors["laplace.lowrank.vectors"] = curvature_.lowrank_vectors;
    tensors["laplace.lowrank.values"] = curvature_.lowrank_values;
  }
  for (size_t i = 0; i < curvature_.kron.size(); ++i) {
    const auto& b = curvature_.kron[i];
    tensors[fmt::format("laplace.kron.{}.A", i)] = b.A;
    tensors[fmt::format("laplace.kron.{}.B", i)] = b.B;
    blocks.push_back({b.offset, b.out, b.in});
  }
  meta["laplace"] = {{"subset", subset_.spec},
                     {"structure", structure},
                     {"curvature", curvature_.kind == CurvatureKind::GGN ? "ggn" : curvature_.kind == CurvatureKind::EF ? "ef" : "mc"},
                     {"kron_blocks", blocks},
                     {"n", curvature_.n},
                     {"noise_power", curvature_.noise_power},
                     {"nll", curvature_.nll},
                     {"sum_sq_residual", curvature_.sum_sq_residual},
                     {"sigma", sigma_},
                     {"temperature", temperature_},
                     {"predictive", predictive_type == LaplacePredictive::GLM ? "glm" : "nn"},
                     {"link", to_string(link)}};
}

std::unique_ptr<LaplacePosterior> LaplacePosterior::load(const TensorMap& tensors, const nlohmann::json& meta,
                                                         const Model& model) {
  const auto& m = meta.at("laplace");
  auto get = [&](const std::string& name) { return posterior_tensor(tensors, name).to(model.device()); };
  Curvature c;
  c.structure = parse_structure(m.at("structure"));
  c.kind = parse_curvature_kind(m.at("curvature"));
  c.n = m.at("n");
  c.noise_power = m.at("noise_power");
  c.nll = m.at("nll");
  c.sum_sq_residual = m.at("sum_sq_residual");
  if (c.structure == Structure::Full) c.full = get("laplace.full");
  if (c.structure == Structure::Diag) c.diag = get("laplace.diag");
  if (c.structure == Structure::LowRank) {
    c.lowrank_vectors = get("laplace.lowrank.vectors");
    c.lowrank_values = get("laplace.lowrank.values");
  }
  for (size_t i = 0; i < m.at("kron_blocks").size(); ++i) {
    const auto& b = m.at("kron_blocks")[i];
    c.kron.push_back({b[0].get<int64_t>(), b[1].get<int64_t>(), b[2].get<int64_t>(), get(fmt::format("laplace.kron.{}.A", i)),
                      get(fmt::format("laplace.kron.{}.B", i))});
  }
  auto post = std::make_unique<LaplacePosterior>(get("laplace.theta"), ParamSubset::restore(m.at("subset"), model, get("laplace.subset_index")),
                                                 std::move(c), get("laplace.prior"), m.at("sigma").get<double>(),
                                                 m.at("temperature").get<double>());
  post->predictive_type = m.at("predictive") == "glm" ? LaplacePredictive::GLM : LaplacePredictive::NN;
  post->link = parse_glm_link(m.at("link"));
  if (tensors.count("laplace.prior_mean")) post->set_prior_mean(get("laplace.prior_mean"));
  return post;
}

}  // namespace credence
