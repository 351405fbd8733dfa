#pragma once
// The floor of each Laplace fit and predictive on a dense network (`mlp`): the forward passes it
// cannot avoid, measured by the library itself, plus the matrix products and factorizations its
// structure needs, each timed here at its real size on random data. Products that sum over rows
// (Gram matrices) run in chunks accumulated into one result, as a pass over the data does.
#include <ATen/ATen.h>
#include <fmt/format.h>

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "credence/curvature/curvature.h"

namespace credence::bench {

struct DenseShape {
  int64_t in = 0, out = 0;
};

struct LaplaceFloor {
  double fit = 0, predict = 0;
};

namespace floor_detail {
inline double since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// Seconds for `step(m)` over `rows` rows taken `chunk` at a time (m: the rows in this one).
template <class Step>
double chunked_seconds(int64_t rows, int64_t chunk, Step step) {
  auto start = std::chrono::steady_clock::now();
  for (int64_t r = 0; r < rows; r += chunk) step(std::min(chunk, rows - r));
  return since(start);
}

// Seconds for the sum over `rows` of x_r^T y_r ([k, n] result).
inline double gram_seconds(int64_t rows, int64_t k, int64_t n) {
  const int64_t chunk = std::min<int64_t>(rows, 8192);
  auto x = at::randn({chunk, k}), y = at::randn({chunk, n}), acc = at::zeros({k, n});
  return chunked_seconds(rows, chunk, [&](int64_t m) { acc.addmm_(x.narrow(0, 0, m).t(), y.narrow(0, 0, m)); });
}

// Seconds for the sum over `rows` of x_r^T x_r ([k, k]), through the library's symmetric update
// (half the products of gram_seconds(rows, k, k)).
inline double self_gram_seconds(int64_t rows, int64_t k) {
  const int64_t chunk = std::min<int64_t>(rows, 8192);
  auto x = at::randn({chunk, k}), acc = at::zeros({k, k});
  double t = chunked_seconds(rows, chunk, [&](int64_t m) { add_gram_upper(acc, x.narrow(0, 0, m)); });
  auto start = std::chrono::steady_clock::now();
  symmetrize_from_upper(acc);
  return t + since(start);
}

// Seconds for the `rows` x k times k x n product.
inline double product_seconds(int64_t rows, int64_t k, int64_t n) {
  const int64_t chunk = std::min<int64_t>(rows, 8192);
  auto x = at::randn({chunk, k}), w = at::randn({k, n}), out = at::empty({chunk, n});
  return chunked_seconds(rows, chunk, [&](int64_t m) {
    auto part = out.narrow(0, 0, m);
    at::mm_out(part, x.narrow(0, 0, m), w);
  });
}

// Backpropagating D output directions per example to every layer's output: one product per layer
// above the first.
inline double backprop_seconds(const std::vector<DenseShape>& layers, int64_t rows, int64_t D) {
  double t = 0;
  for (size_t l = 1; l < layers.size(); ++l) t += product_seconds(rows * D, layers[l].out, layers[l].in);
  return t;
}

// The float64 factorizations of a dense K x K posterior: the eigenvalues for the marginal
// likelihood, then the Cholesky factor and its inverse for the covariance.
inline double dense_factor_seconds(int64_t K) {
  auto R = at::randn({K, K}, at::kDouble);
  auto P = R.mm(R.t()) + K * at::eye(K, at::kDouble);
  auto start = std::chrono::steady_clock::now();
  at::linalg_eigvalsh(P);
  at::cholesky_inverse(at::linalg_cholesky(P));
  return since(start);
}
}  // namespace floor_detail

/// Floors keyed by method spec, for N training and M test rows; `forward` is one forward pass
/// over the training rows and `predict` the MAP's prediction on the test rows, both measured.
inline std::map<std::string, LaplaceFloor> laplace_floors(const std::vector<DenseShape>& layers, int64_t N,
                                                          int64_t M, double forward, double predict,
                                                          int64_t subnetwork = 1000) {
  using namespace floor_detail;
  std::map<std::string, LaplaceFloor> f;
  const int64_t C = layers.back().out, in = layers.back().in, in1 = in + 1;
  LaplaceFloor kron{forward + self_gram_seconds(N, in), predict + product_seconds(M, in, in)};
  f["laplace:subset=last_layer,hessian=kron"] = kron;
  f["laplace:subset=last_layer,hessian=kron,link=bridge"] = kron;
  f["laplace:subset=last_layer,hessian=diag"] = {forward + gram_seconds(N, in, C), predict + product_seconds(M, in, C)};
  // Full: the C (C + 1) / 2 blocks sum_n Lambda_n[o, o'] a_n a_n^T; the probit needs each class's
  // variance a^T Sigma_oo a.
  f["laplace:subset=last_layer,hessian=full"] = {
      forward + C * (C + 1) / 2 * gram_seconds(N, in1, in1) + dense_factor_seconds(C * in1),
      predict + C * product_seconds(M, in1, in1)};

  auto all_pass = [&](int64_t rows, int64_t D, bool kron_factors) {
    double t = forward + backprop_seconds(layers, rows, D);
    for (const auto& l : layers)
      t += kron_factors ? self_gram_seconds(rows * D, l.out) + self_gram_seconds(rows, l.in)
                        : gram_seconds(rows, l.out, l.in);  // the squares' sum_n g2_n a2_n^T
    return t;
  };
  // The GLM predictive of all weights: the C directions to every layer, then per layer the
  // rotations into the factors' eigenbases (kron) and the inputs' squares weighted by the
  // variances, s = (a^2) V^T [M, out], which every class shares: var_c = sum_o g_co^2 s_o.
  double kron_predict = predict + backprop_seconds(layers, M, C), diag_predict = kron_predict;
  for (const auto& l : layers) {
    kron_predict += product_seconds(M * C, l.out, l.out) + product_seconds(M, l.in, l.in) +
                    product_seconds(M, l.in, l.out);
    diag_predict += product_seconds(M, l.in, l.out);
  }
  const double kron_exact = all_pass(N, C, true), diag_exact = all_pass(N, C, false);
  f["laplace:subset=all,hessian=kron"] = {kron_exact, kron_predict};
  f["laplace:subset=all,hessian=diag"] = {diag_exact, diag_predict};
  f["laplace:subset=all,hessian=kron,curvature=mc"] = {all_pass(N, 1, true), kron_predict};
  // Subnetwork: a diagonal pass chooses the weights, a second pass sums their Jacobian rows' Gram.
  const int64_t S = subnetwork;
  f[fmt::format("laplace:subset=subnetwork:{},hessian=full", S)] = {
      diag_exact + forward + backprop_seconds(layers, N, C) + self_gram_seconds(N * C, S) + dense_factor_seconds(S),
      predict + backprop_seconds(layers, M, C) + product_seconds(M * C, S, S)};
  return f;
}

}  // namespace credence::bench
