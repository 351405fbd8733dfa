#include "ivon_update.h"

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>

#include <algorithm>
#include <cmath>

namespace credence::ivon {

bool can_fuse(const torch::Tensor& m) {
  return m.device().is_cpu() && (m.scalar_type() == at::kFloat || m.scalar_type() == at::kDouble);
}

void sample(const torch::Tensor& m, const torch::Tensor& h, const torch::Tensor& delta, double lambda,
            const torch::Tensor& eps, torch::Tensor& sigma, torch::Tensor& theta, bool fused) {
  if (!fused) {
    sigma.copy_(at::rsqrt(lambda * (h + delta)));
    theta.copy_(m + sigma * eps);
    return;
  }
  const int64_t P = m.size(0), S = eps.size(0);
  AT_DISPATCH_FLOATING_TYPES(m.scalar_type(), "ivon_sample", [&] {
    auto mp = m.contiguous(), hp = h.contiguous(), dp = delta.contiguous(), ep = eps.contiguous();
    const scalar_t *M = mp.data_ptr<scalar_t>(), *H = hp.data_ptr<scalar_t>(), *D = dp.data_ptr<scalar_t>(),
                   *E = ep.data_ptr<scalar_t>();
    scalar_t *Sg = sigma.data_ptr<scalar_t>(), *T = theta.data_ptr<scalar_t>();
    const scalar_t lam = static_cast<scalar_t>(lambda);
    for (int64_t i = 0; i < P; ++i) Sg[i] = scalar_t(1) / std::sqrt(lam * (H[i] + D[i]));
    for (int64_t s = 0; s < S; ++s)
      for (int64_t i = 0; i < P; ++i) T[s * P + i] = M[i] + Sg[i] * E[s * P + i];
  });
}

double update(torch::Tensor& m, torch::Tensor& h, torch::Tensor& g, const torch::Tensor& delta,
              const torch::Tensor& prior_mean, const torch::Tensor& grad, const torch::Tensor& eps,
              const torch::Tensor& sigma, const Hyper& k, bool fused) {
  const double bias = 1.0 - std::pow(k.beta1, static_cast<double>(k.step));
  if (!fused) {
    auto ghat = grad.mean(0);
    // Reparameterization estimate of diag(Hessian): E[grad(m + sigma eps) eps / sigma] = diag(H).
    auto hhat = (grad * eps).mean(0) / sigma;
    g.mul_(k.beta1).add_(ghat, 1.0 - k.beta1);
    // The "improved" Hessian update: the extra term keeps h + delta > 0 whatever hhat's sign.
    auto correction = (h - hhat).pow(2) / (h + delta);
    h.mul_(k.beta2).add_(hhat, 1.0 - k.beta2).add_(correction, 0.5 * (1.0 - k.beta2) * (1.0 - k.beta2));
    auto offset = [&] { return prior_mean.defined() ? m - prior_mean : m; };
    auto direction = (g / bias + delta * offset()) / (h + delta);
    if (k.clip > 0) direction.clamp_(-k.clip, k.clip);
    m.add_(direction, -k.lr);
    auto d = offset();
    return 0.5 * (delta * d * d).sum().item<double>();
  }
  const int64_t P = m.size(0), S = grad.size(0);
  double prior = 0;
  AT_DISPATCH_FLOATING_TYPES(m.scalar_type(), "ivon_update", [&] {
    auto gr = grad.contiguous(), ep = eps.contiguous(), dp = delta.contiguous();
    auto mu = prior_mean.defined() ? prior_mean.contiguous() : torch::Tensor();
    const scalar_t *G = gr.data_ptr<scalar_t>(), *E = ep.data_ptr<scalar_t>(), *Sg = sigma.data_ptr<scalar_t>(),
                   *D = dp.data_ptr<scalar_t>(), *Mu = mu.defined() ? mu.data_ptr<scalar_t>() : nullptr;
    scalar_t *M = m.data_ptr<scalar_t>(), *H = h.data_ptr<scalar_t>(), *Mo = g.data_ptr<scalar_t>();
    const scalar_t b1 = k.beta1, b2 = k.beta2, half_sq = 0.5 * (1.0 - k.beta2) * (1.0 - k.beta2),
                   inv_s = scalar_t(1) / static_cast<scalar_t>(S), inv_bias = 1.0 / bias, lr = k.lr,
                   clip = k.clip;
    double acc = 0;
    for (int64_t i = 0; i < P; ++i) {
      scalar_t ghat = 0, hhat = 0;
      for (int64_t s = 0; s < S; ++s) {
        ghat += G[s * P + i];
        hhat += G[s * P + i] * E[s * P + i];
      }
      ghat *= inv_s;
      hhat *= inv_s / Sg[i];
      Mo[i] = b1 * Mo[i] + (1 - b1) * ghat;
      const scalar_t diff = H[i] - hhat;
      H[i] = b2 * H[i] + (1 - b2) * hhat + half_sq * diff * diff / (H[i] + D[i]);
      scalar_t dir = (Mo[i] * inv_bias + D[i] * (Mu ? M[i] - Mu[i] : M[i])) / (H[i] + D[i]);
      if (clip > 0) dir = std::clamp(dir, -clip, clip);
      M[i] -= lr * dir;
      const scalar_t c = Mu ? M[i] - Mu[i] : M[i];
      acc += static_cast<double>(D[i] * c * c);
    }
    prior = 0.5 * acc;
  });
  return prior;
}

}  // namespace credence::ivon
