#include "credence/posterior/laplace.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "credence/core/error.h"
#include "credence/core/rng.h"

namespace credence {
namespace {
constexpr double kLog2Pi = 1.8378770664093454836;

// Dense factorizations run in float64: better conditioned, and OpenBLAS's float32 triangular
// kernels crash on some processors it does not recognize.
torch::Tensor check_cholesky(const torch::Tensor& P) {
  auto [L, info] = at::linalg_cholesky_ex(P.to(at::kDouble));
  if (info.item<int64_t>() != 0)
    throw NumericalError("Laplace: the posterior precision is not positive definite; raise the prior precision");
  return L;
}
}  // namespace

GlmLink parse_glm_link(const std::string& name) {
  if (name == "probit") return GlmLink::Probit;
  if (name == "bridge") return GlmLink::Bridge;
  if (name == "mc") return GlmLink::MC;
  throw InvalidArgument(fmt::format("unknown link '{}' (known: probit, bridge, mc)", name));
}

const char* to_string(GlmLink link) {
  return link == GlmLink::Probit ? "probit" : link == GlmLink::Bridge ? "bridge" : "mc";
}

LaplacePosterior::LaplacePosterior(torch::Tensor theta, ParamSubset subset, Curvature curvature,
                                   torch::Tensor prior_precision, double sigma, double temperature)
    : theta_(theta.detach()), subset_(std::move(subset)), curvature_(std::move(curvature)),
      sigma_(sigma), temperature_(temperature) {
  if (!(temperature > 0)) throw InvalidArgument(fmt::format("laplace: temperature must be > 0, got {}", temperature));
  theta_sub_ = subset_.gather(theta_);
  if (curvature_.structure == Structure::Kron) {
    for (const auto& b : curvature_.kron) {
      auto [la, qa] = at::linalg_eigh(b.A.to(at::kDouble));
      auto [lb, qb] = at::linalg_eigh(b.B.to(at::kDouble));
      // Curvature factors are PSD; clamp round-off negatives so logs stay finite.
      auto dtype = theta_.scalar_type();
      eig_a_.push_back(la.clamp_min(0).to(dtype));
      vec_a_.push_back(qa.to(dtype).contiguous());
      eig_b_.push_back(lb.clamp_min(0).to(dtype));
      vec_b_.push_back(qb.to(dtype).contiguous());
    }
    // A dense layer's bias block has its weights' output factor: the predictive rotates once.
    for (size_t i = 0; i < curvature_.kron.size(); ++i)
      shares_a_.push_back(i > 0 && curvature_.kron[i].in == 1 && curvature_.kron[i - 1].in > 1 &&
                          at::equal(curvature_.kron[i].A, curvature_.kron[i - 1].A));
  } else if (curvature_.structure == Structure::Full) {
    // Eigenvalues only (half the time of the vectors, which nothing needs): they make each
    // marginal-likelihood step O(K) for a scalar prior. The curvature is PSD in exact arithmetic;
    // lifting it by its most negative round-off eigenvalue keeps P = s H + D positive definite for
    // every prior that marglik tuning may try, and eig_h_ the eigenvalues of the matrix used.
    auto H = curvature_.full.to(at::kDouble);
    H = 0.5 * (H + H.t());
    auto lh = at::linalg_eigvalsh(H);
    const double lift = std::max(0.0, -lh.min().item<double>());
    full_psd_ = lift > 0 ? H + lift * at::eye(H.size(0), H.options()) : H;
    eig_h_ = (lh + lift).to(theta_.scalar_type());
  }
  set_hyper(prior_precision, sigma);
}

double LaplacePosterior::curvature_scale(double sigma) const {
  return 1.0 / (temperature_ * std::pow(sigma, curvature_.noise_power));
}

torch::Tensor LaplacePosterior::block_prior(const torch::Tensor& prior, int64_t offset) const {
  return prior.numel() == 1 ? prior.reshape({}) : prior[offset];
}

torch::Tensor LaplacePosterior::layer_blocks(const torch::Tensor& m) const {
  if (subset_.layers.size() != 1) return {};
  const auto& l = subset_.layers.front();
  if (l.kind != LayerKind::Dense || l.partial()) return {};
  auto idx = l.entry_index(m.device());
  const int64_t in1 = idx.size(1);
  idx = idx.reshape({-1});
  return m.index_select(0, idx).index_select(1, idx).view({l.out, in1, l.out, in1}).permute({0, 2, 1, 3}).contiguous();
}

void LaplacePosterior::set_hyper(const torch::Tensor& prior_precision, double sigma) {
  forget_draws();
  auto p = prior_precision.to(theta_.options());
  prior_ = p.numel() == 1 ? p.reshape({1}).expand({subset_.size}).clone() : p.clone();
  if (prior_.numel() != subset_.size)
    throw InvalidArgument(fmt::format("laplace: {} prior precisions for {} parameters", prior_.numel(), subset_.size));
  if (at::any(prior_ <= 0).item<bool>()) throw InvalidArgument("laplace: prior precision must be > 0");
  if (curvature_.structure == Structure::Kron && prior_.numel() > 1)
    for (const auto& b : curvature_.kron) {
      auto block = prior_.narrow(0, b.offset, b.out * b.in);
      if (!at::equal(block, block[0].expand_as(block)))
        throw InvalidArgument("laplace: hessian=kron needs one prior precision per weight or bias tensor; a prior "
                              "with a precision per parameter needs hessian=diag, full or lowrank:K");
    }
  sigma_ = sigma;
  factorize();
}

torch::Tensor LaplacePosterior::lowrank_w(const torch::Tensor& delta, const torch::Tensor& s) const {
  auto lam = (s * curvature_.lowrank_values).clamp_min(0);
  return curvature_.lowrank_vectors * lam.sqrt() / delta.sqrt().unsqueeze(1);
}

void LaplacePosterior::factorize() {
  const double s = curvature_scale(sigma_);
  switch (curvature_.structure) {
    case Structure::LowRank: {
      auto W = lowrank_w(prior_, at::full({}, s, theta_.options())).to(at::kDouble);
      auto [s2, R] = at::linalg_eigh(W.t().mm(W));
      s2 = s2.clamp_min(0);
      // Columns with S = 0 do not change P; give them zero weight rather than dividing by zero.
      auto inv_s = at::where(s2 > 1e-30, s2.clamp_min(1e-30).rsqrt(), at::zeros_like(s2));
      lr_q_ = (W.mm(R) * inv_s).to(theta_.scalar_type());
      lr_s2_ = s2.to(theta_.scalar_type());
      break;
    }
    case Structure::Kron:
      block_d_.clear();
      block_var_t_.clear();
      for (size_t i = 0; i < curvature_.kron.size(); ++i) {
        block_d_.push_back(s * at::outer(eig_a_[i], eig_b_[i]) + block_prior(prior_, curvature_.kron[i].offset));
        block_var_t_.push_back(block_d_.back().reciprocal().t().contiguous());
      }
      break;
    case Structure::Diag: diag_p_ = s * curvature_.diag + prior_; break;
    case Structure::Full:
      chol_ = check_cholesky(s * full_psd_ + at::diag(prior_.to(at::kDouble)));  // float64
      cov_ = at::cholesky_inverse(chol_).to(theta_.scalar_type());
      cov_blocks_ = layer_blocks(cov_);
      break;
  }
}

torch::Tensor LaplacePosterior::log_marginal_likelihood(const torch::Tensor& log_prior,
                                                        const torch::Tensor& log_sigma) const {
  auto opts = theta_.options();
  // Prior precision per subset entry: from one value, one per layer, or one per entry.
  auto delta = log_prior.numel() == subset_.size && log_prior.numel() > 1 ? log_prior.reshape({-1}).exp()
                                                                          : subset_.per_entry(log_prior.exp());
  const bool gaussian = curvature_.noise_power > 0;
  auto sigma = gaussian ? log_sigma.reshape({}).exp() : at::ones({}, opts);
  auto s = 1.0 / (temperature_ * sigma.pow(curvature_.noise_power));
  const double n = static_cast<double>(curvature_.n);
  auto log_lik = gaussian ? -0.5 * curvature_.sum_sq_residual / (sigma * sigma) / temperature_ -
                                n * (at::log(sigma) + 0.5 * kLog2Pi)
                          : at::full({}, -curvature_.nll / temperature_, opts);
  torch::Tensor logdet;
  switch (curvature_.structure) {
    case Structure::Kron: {
      logdet = at::zeros({}, opts);
      for (size_t i = 0; i < curvature_.kron.size(); ++i)
        logdet = logdet + at::log(s * at::outer(eig_a_[i], eig_b_[i]) + delta[curvature_.kron[i].offset]).sum();
      break;
    }
    case Structure::Diag: logdet = at::log(s * curvature_.diag + delta).sum(); break;
    case Structure::LowRank: {
      auto W = lowrank_w(delta, s);
      auto I = at::eye(W.size(1), opts);
      logdet = at::log(delta).sum() +
               2 * at::log(at::diagonal(check_cholesky(I + W.t().mm(W)))).sum().to(opts.dtype());
      break;
    }
    case Structure::Full:
      logdet = log_prior.numel() == 1 ? at::log(s * eig_h_ + delta[0]).sum()
                                      : 2 * at::log(at::diagonal(check_cholesky(s.to(at::kDouble) * full_psd_ + at::diag(delta.to(at::kDouble)))))
                                                .sum()
                                                .to(opts.dtype());
      break;
  }
  auto offset = offset_from_prior_mean();
  auto scatter = (delta * offset * offset).sum();
  return log_lik - 0.5 * (logdet - at::log(delta).sum() + scatter);
}

double LaplacePosterior::log_marginal_likelihood() const {
  at::NoGradGuard no_grad;
  // One log precision when the prior is isotropic, else one per entry.
  auto lp = at::log(prior_.narrow(0, 0, 1));
  bool scalar = at::allclose(prior_, prior_[0].expand_as(prior_));
  if (!scalar) lp = at::log(prior_);  // per entry (a learned prior varies within a layer)
  return log_marginal_likelihood(lp, at::full({}, std::log(sigma_), theta_.options())).item<double>();
}

double LaplacePosterior::log_likelihood() const {
  if (curvature_.noise_power == 0) return -curvature_.nll / temperature_;
  return -0.5 * curvature_.sum_sq_residual / (sigma_ * sigma_) / temperature_ -
         curvature_.n * (std::log(sigma_) + 0.5 * kLog2Pi);
}

double LaplacePosterior::log_det_precision() const {
  switch (curvature_.structure) {
    case Structure::Kron: {
      double v = 0;
      for (const auto& d : block_d_) v += at::log(d).sum().item<double>();
      return v;
    }
    case Structure::Diag: return at::log(diag_p_).sum().item<double>();
    case Structure::LowRank: return (at::log(prior_).sum() + at::log1p(lr_s2_).sum()).item<double>();
    case Structure::Full: return 2 * at::log(at::diagonal(chol_)).sum().item<double>();  // chol_ is float64
  }
  return 0;
}

double LaplacePosterior::log_det_prior() const { return at::log(prior_).sum().item<double>(); }
double LaplacePosterior::scatter() const {
  auto offset = offset_from_prior_mean();
  return (prior_ * offset * offset).sum().item<double>();
}

torch::Tensor LaplacePosterior::offset_from_prior_mean() const {
  return prior_mean_.defined() ? theta_sub_ - prior_mean_ : theta_sub_;
}

torch::Tensor LaplacePosterior::marginal_variance() const {
  switch (curvature_.structure) {
    case Structure::Diag: return diag_p_.reciprocal();
    case Structure::Full: return cov_.diagonal().clone();
    case Structure::Kron: {
      // The diagonal of (Qa (x) Qb) D^-1 (Qa (x) Qb)^T is (Qa o Qa) D^-1 (Qb o Qb)^T, entry by entry.
      auto var = at::empty({subset_.size}, theta_.options());
      for (size_t i = 0; i < curvature_.kron.size(); ++i) {
        const auto& b = curvature_.kron[i];
        auto v = vec_a_[i].pow(2).mm(block_d_[i].reciprocal()).mm(vec_b_[i].pow(2).t());
        var.narrow(0, b.offset, b.out * b.in).copy_(v.reshape({-1}));
      }
      return var;
    }
    case Structure::LowRank:
      // P = D^1/2 (I + Q S^2 Q^T) D^1/2 (the factorization's lr_q_, lr_s2_), so by Woodbury
      // diag P^-1 = (1 - rowsum(Q^2 S^2 / (1 + S^2))) / D.
      return (1.0 - (lr_q_.pow(2) * (lr_s2_ / (1 + lr_s2_))).sum(1)) / prior_;
  }
  return {};
}

void LaplacePosterior::set_prior_mean(const torch::Tensor& mean) {
  if (mean.defined() && mean.numel() != subset_.size)
    throw InvalidArgument(fmt::format("laplace: a prior mean of {} values for {} parameters", mean.numel(), subset_.size));
  prior_mean_ = mean.defined() ? mean.detach().to(theta_.options()).reshape({-1}) : torch::Tensor();
}

torch::Tensor LaplacePosterior::precision_dense() const {
  const double s = curvature_scale(sigma_);
  return s * curvature_.dense() + at::diag(prior_);
}

torch::Tensor LaplacePosterior::sample(int64_t n, uint64_t seed) const {
  if (n < 1) throw InvalidArgument(fmt::format("number of samples must be >= 1, got {}", n));
  auto eps = keyed_randn({n, subset_.size}, rng_key(seed, Stream::Sample), theta_.options());
  torch::Tensor x;
  switch (curvature_.structure) {
    case Structure::Diag: x = eps / diag_p_.sqrt(); break;
    case Structure::LowRank: {  // D^{-1/2} (I + W W^T)^{-1/2} eps
      auto c = (1 + lr_s2_).rsqrt() - 1;
      x = (eps + (eps.mm(lr_q_) * c).mm(lr_q_.t())) / prior_.sqrt();
      break;
    }
    case Structure::Full:  // cov = P^{-1} = L^{-T} L^{-1}: x = L^{-T} eps
      x = at::linalg_solve_triangular(chol_.t(), eps.t().to(at::kDouble), /*upper=*/true).t().to(eps.scalar_type());
      break;
    case Structure::Kron: {
      x = at::empty_like(eps);
      for (size_t i = 0; i < curvature_.kron.size(); ++i) {
        const auto& b = curvature_.kron[i];
        auto e = eps.narrow(1, b.offset, b.out * b.in).view({n, b.out, b.in}) / block_d_[i].sqrt();
        x.narrow(1, b.offset, b.out * b.in).copy_(vec_a_[i].matmul(e).matmul(vec_b_[i].t()).reshape({n, -1}));
      }
      break;
    }
  }
  return subset_.scatter(theta_, theta_sub_ + x);
}

}  // namespace credence
