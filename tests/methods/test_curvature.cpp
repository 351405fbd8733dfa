// Curvature against brute-force definitions built from autograd per-example gradients.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>

#include "credence/credence.h"
#include "credence/curvature/curvature.h"
#include "credence/posterior/laplace.h"

namespace credence {
namespace {

struct Case {
  Dataset data;
  std::shared_ptr<Model> model;
  Likelihood lik;
  torch::Tensor theta;
  ParamSubset subset;
};

Case make_case(int64_t n) {
  Case c;
  c.data = load_data("synthetic:moons?n=" + std::to_string(n), {torch::kFloat64}).fit;
  c.model = make_model("mlp:4?act=tanh", {2}, 2, torch::kFloat64);
  c.lik = Likelihood::parse("categorical", c.data);
  c.theta = c.model->init_params(3);
  c.subset = ParamSubset::parse("all", *c.model);
  return c;
}

// Jacobian of the outputs of example i with respect to theta: [C, P].
torch::Tensor jacobian(const Case& c, int64_t i) {
  auto th = c.theta.clone().requires_grad_(true);
  auto f = c.model->forward(c.data.x.narrow(0, i, 1), th).squeeze(0);
  std::vector<torch::Tensor> rows;
  for (int64_t k = 0; k < f.size(0); ++k)
    rows.push_back(torch::autograd::grad({f[k]}, {th}, {}, /*retain_graph=*/true)[0]);
  return at::stack(rows);
}

}  // namespace

TEST(Curvature, FullGgnAndEfEqualBruteForce) {
  auto c = make_case(20);
  auto ggn = at::zeros({c.subset.size, c.subset.size}, at::kDouble), ef = at::zeros_like(ggn);
  for (int64_t i = 0; i < c.data.size(); ++i) {
    auto J = jacobian(c, i);
    auto p = at::softmax(c.model->forward(c.data.x.narrow(0, i, 1), c.theta).squeeze(0), 0);
    ggn += J.t().mm(at::diag(p) - at::outer(p, p)).mm(J);
    auto r = p.clone();
    r[c.data.y[i].item<int64_t>()] -= 1;  // gradient of the NLL in the outputs
    auto g = J.t().mv(r);
    ef += at::outer(g, g);
  }
  auto full = compute_curvature(*c.model, c.lik, c.subset, c.theta, c.data, Structure::Full, CurvatureKind::GGN, 7);
  EXPECT_TRUE(at::allclose(full.full, ggn, 1e-10, 1e-12));
  auto efc = compute_curvature(*c.model, c.lik, c.subset, c.theta, c.data, Structure::Full, CurvatureKind::EF, 7);
  EXPECT_TRUE(at::allclose(efc.full, ef, 1e-10, 1e-12));
  auto diag = compute_curvature(*c.model, c.lik, c.subset, c.theta, c.data, Structure::Diag, CurvatureKind::GGN, 7);
  EXPECT_TRUE(at::allclose(diag.diag, ggn.diagonal(), 1e-10, 1e-12));
}

TEST(Curvature, KronWithOneExampleEqualsTheExactBlocks) {
  auto c = make_case(1);
  auto kron = compute_curvature(*c.model, c.lik, c.subset, c.theta, c.data, Structure::Kron, CurvatureKind::GGN);
  auto full = compute_curvature(*c.model, c.lik, c.subset, c.theta, c.data, Structure::Full, CurvatureKind::GGN);
  auto dense = kron.dense();
  for (const auto& b : kron.kron) {
    int64_t m = b.out * b.in;
    EXPECT_TRUE(at::allclose(dense.narrow(0, b.offset, m).narrow(1, b.offset, m),
                             full.full.narrow(0, b.offset, m).narrow(1, b.offset, m), 1e-10, 1e-12))
        << "block at " << b.offset;
  }
}

TEST(Curvature, KronFactorsEqualTheirDefinitions) {
  // With many examples the exact block is a sum of Kronecker products; each factor must still
  // equal its own definition: A = sum_n G_n (output side), B = mean_n a_n a_n^T (input side).
  auto c = make_case(30);
  auto kron = compute_curvature(*c.model, c.lik, c.subset, c.theta, c.data, Structure::Kron, CurvatureKind::GGN, 8);
  ForwardTrace trace;
  auto th = c.theta.clone().requires_grad_(true);
  auto f = c.model->forward(c.data.x, th, &trace);
  auto p = at::softmax(f.detach(), 1);
  for (size_t layer = 0; layer < 2; ++layer) {
    const auto& z = trace.outputs[layer];
    auto A = at::zeros({z.size(1), z.size(1)}, at::kDouble);
    for (int64_t i = 0; i < c.data.size(); ++i) {
      std::vector<torch::Tensor> rows;  // dz_i / df_k for each output k
      for (int64_t k = 0; k < 2; ++k)
        rows.push_back(torch::autograd::grad({f[i][k]}, {z}, {}, true)[0][i]);
      auto Jz = at::stack(rows);  // [C, out]
      A += Jz.t().mm(at::diag(p[i]) - at::outer(p[i], p[i])).mm(Jz);
    }
    auto a = trace.inputs[layer].detach();
    auto B = a.t().mm(a) / static_cast<double>(c.data.size());
    EXPECT_TRUE(at::allclose(kron.kron[2 * layer].A, A, 1e-10, 1e-12)) << "layer " << layer;
    EXPECT_TRUE(at::allclose(kron.kron[2 * layer].B, B, 1e-10, 1e-12)) << "layer " << layer;
    EXPECT_TRUE(at::allclose(kron.kron[2 * layer + 1].A, A, 1e-10, 1e-12));
  }
}

TEST(Curvature, RefusesAFullMatrixThatDoesNotFit) {
  auto model = make_model("mlp:256,256", {784}, 10);
  auto subset = ParamSubset::parse("all", *model);
  Dataset d;
  d.x = at::zeros({1, 784});
  d.y = at::zeros({1}, at::kLong);
  d.task = Task::Classification;
  d.num_classes = 10;
  try {
    compute_curvature(*model, Likelihood::parse("categorical", d), subset, model->init_params(0), d, Structure::Full,
                      CurvatureKind::GGN);
    FAIL() << "accepted a 269,322 x 269,322 matrix";
  } catch (const NotSupported& e) {
    EXPECT_NE(std::string(e.what()).find("hessian=kron"), std::string::npos);
  }
  EXPECT_EQ(ParamSubset::parse("all", *make_model("cnn:lenet", {1, 28, 28}, 10)).layers.size(), 5u);  // 2 conv, 3 linear
  EXPECT_THROW(ParamSubset::parse("bogus", *model), InvalidArgument);
}

}  // namespace credence

namespace credence {
namespace {

Case make_relu_case() {
  Case c;
  c.data = load_data("synthetic:moons?n=9", {torch::kFloat64}).fit;
  c.model = make_model("mlp:5,4", {2}, 3, torch::kFloat64);
  c.lik = Likelihood::parse("categorical", c.data);
  c.theta = c.model->init_params(5);
  return c;
}

}  // namespace

// The hand-written layer Jacobian of a ReLU network equals autograd's, direction by direction.
TEST(LayerJacobian, EqualsAutogradForEveryDirection) {
  auto c = make_relu_case();
  const auto* jacobian = c.model->find<LayerJacobian>();
  ASSERT_NE(jacobian, nullptr);
  auto dirs = at::randn({c.data.size(), 3, 4}, at::kDouble);
  ForwardTrace trace, ref;
  std::vector<torch::Tensor> grads;
  torch::Tensor seen;  // the directions are asked for at the pass's own outputs
  auto f = jacobian->forward_jacobian(
      c.data.x, c.theta,
      [&](const torch::Tensor& outputs) {
        seen = outputs;
        return dirs;
      },
      trace, grads);
  auto th = c.theta.clone().requires_grad_(true);
  auto f_ref = c.model->forward(c.data.x, th, &ref);
  EXPECT_TRUE(at::allclose(f, f_ref.detach(), 1e-12, 1e-12));
  ASSERT_TRUE(seen.defined());
  EXPECT_TRUE(at::equal(seen, f));
  ASSERT_EQ(grads.size(), ref.outputs.size());
  for (int64_t d = 0; d < dirs.size(2); ++d) {
    auto g = torch::autograd::grad({f_ref}, ref.outputs, {dirs.select(2, d)}, /*retain_graph=*/true);
    for (size_t j = 0; j < grads.size(); ++j)
      EXPECT_TRUE(at::allclose(grads[j].select(1, d), g[j], 1e-12, 1e-12)) << "layer " << j << ", direction " << d;
  }
}

// The GLM variance of every weight, of the last layer alone and of a hidden layer alone, in each
// structure, equals J Sigma J^T with Sigma the dense inverse precision and J autograd's Jacobian.
TEST(LayerJacobian, GlmVarianceOfAReluNetworkEqualsItsDenseCovariance) {
  auto c = make_relu_case();
  auto x = at::randn({3, 2}, at::kDouble);
  for (const std::string subset : {"all", "last_layer", "names:layer1"}) {
    for (auto structure : {Structure::Kron, Structure::Diag, Structure::Full}) {
      SCOPED_TRACE(subset + " " + std::to_string(static_cast<int>(structure)));
      auto s = ParamSubset::parse(subset, *c.model);
      auto curv = compute_curvature(*c.model, c.lik, s, c.theta, c.data, structure, CurvatureKind::GGN, 4);
      const double delta = 0.6;
      LaplacePosterior post(c.theta, s, curv, at::full({1}, delta, at::kDouble), 1.0, 1.0);
      auto fvar = post.function_variance(*c.model, x, false);
      EXPECT_TRUE(at::allclose(post.function_variance(*c.model, x, true), fvar.diagonal(0, 1, 2), 1e-10, 1e-12));
      auto H = curv.dense();
      auto cov = at::inverse(H + delta * at::eye(H.size(0), at::kDouble));
      for (int64_t i = 0; i < x.size(0); ++i) {
        auto th = c.theta.clone().requires_grad_(true);
        auto f = c.model->forward(x.narrow(0, i, 1), th).squeeze(0);
        std::vector<torch::Tensor> rows;
        for (int64_t k = 0; k < f.size(0); ++k)
          rows.push_back(s.gather(torch::autograd::grad({f[k]}, {th}, {}, /*retain_graph=*/true)[0]));
        auto J = at::stack(rows);
        EXPECT_TRUE(at::allclose(fvar[i], J.mm(cov).mm(J.t()), 1e-8, 1e-10)) << "example " << i;
      }
    }
  }
}

}  // namespace credence

namespace credence {

// One whole dense layer's full curvature is summed from output-Hessian-weighted Gram blocks of its
// inputs instead of Jacobian rows: it must still equal sum_n J_n^T Lambda_n J_n, bias included.
TEST(Curvature, OneLayerFullGgnFromGramBlocksEqualsBruteForce) {
  auto data = load_data("synthetic:moons?n=13", {torch::kFloat64}).fit;
  for (const auto& [spec, layer] : std::vector<std::pair<std::string, std::string>>{
           {"mlp:5,4", "last_layer"}, {"mlp:5,4", "names:layer1"}, {"mlp:", "all"}}) {
    SCOPED_TRACE(spec + " " + layer);
    auto model = make_model(spec, {2}, 3, torch::kFloat64);
    auto lik = Likelihood::parse("categorical", data);
    auto theta = model->init_params(2);
    auto subset = ParamSubset::parse(layer, *model);
    auto ggn = at::zeros({subset.size, subset.size}, at::kDouble);
    for (int64_t i = 0; i < data.size(); ++i) {
      auto th = theta.clone().requires_grad_(true);
      auto f = model->forward(data.x.narrow(0, i, 1), th).squeeze(0);
      std::vector<torch::Tensor> rows;
      for (int64_t k = 0; k < f.size(0); ++k)
        rows.push_back(torch::autograd::grad({f[k]}, {th}, {}, /*retain_graph=*/true)[0].index_select(0, subset.index));
      auto J = at::stack(rows);
      auto p = at::softmax(f.detach(), 0);
      ggn += J.t().mm(at::diag(p) - at::outer(p, p)).mm(J);
    }
    auto full = compute_curvature(*model, lik, subset, theta, data, Structure::Full, CurvatureKind::GGN, 5);
    EXPECT_TRUE(at::allclose(full.full, ggn, 1e-10, 1e-12));
  }
}

TEST(Curvature, SymmetricGramUpdatesSumTheProducts) {
  // Widths on both sides of the narrow-Gram cut-off and not multiples of the tiles, and a
  // transposed (non-contiguous) X. Two updates, then one symmetrization.
  for (auto dtype : {at::kFloat, at::kDouble})
    for (int64_t d : {7, 100, 130}) {
      auto opts = at::TensorOptions().dtype(dtype);
      auto X1 = at::randn({300, d}, opts), X2 = at::randn({d, 50}, opts).t();
      auto R = at::randn({d, d}, opts);
      auto S = R + R.t();
      auto expected = S + X1.t().mm(X1) + X2.t().mm(X2);
      add_gram_upper(S, X1);
      add_gram_upper(S, X2);
      symmetrize_from_upper(S);
      const double tol = dtype == at::kFloat ? 1e-4 : 1e-10;
      EXPECT_TRUE(at::allclose(S, expected, tol, tol)) << "d " << d << " " << (S - expected).abs().max();
      EXPECT_TRUE(at::equal(S, S.t()));
    }
}

}  // namespace credence
