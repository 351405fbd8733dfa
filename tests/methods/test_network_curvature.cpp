// Curvature over all weights of the resnet and transformer families (convolutions, layers shared
// by tokens, normalizations, position embeddings) against brute force from autograd.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>

#include "credence/credence.h"
#include "credence/curvature/curvature.h"
#include "credence/model/network.h"
#include "credence/posterior/laplace.h"

namespace credence {
namespace {

const auto kF64 = at::TensorOptions().dtype(at::kDouble);

struct Case {
  Dataset data;
  std::shared_ptr<Model> model;
  Likelihood lik;
  torch::Tensor theta;
  ParamSubset subset;
};

Case make_case(const std::string& spec, std::vector<int64_t> image, int64_t n, int64_t classes = 3) {
  at::manual_seed(1);
  Case c;
  std::vector<int64_t> shape = {n};
  shape.insert(shape.end(), image.begin(), image.end());
  c.data.x = at::randn(shape, kF64);
  c.data.y = at::randint(classes, {n}, at::TensorOptions().dtype(at::kLong));
  c.data.task = Task::Classification;
  c.data.num_classes = classes;
  c.data.standardize_inputs = false;
  c.model = make_model(spec, image, classes, at::kDouble);
  c.lik = Likelihood::parse("categorical", c.data);
  // Perturbed so that no normalization sits at its initial scale 1 and shift 0.
  c.theta = c.model->init_params(3) + 0.1 * at::randn({c.model->layout().size}, kF64);
  c.subset = ParamSubset::parse("all", *c.model);
  return c;
}

// Jacobian of example i's outputs with respect to theta: [C, P].
torch::Tensor jacobian(const Model& model, const torch::Tensor& theta, const torch::Tensor& x) {
  auto th = theta.clone().requires_grad_(true);
  auto f = model.forward(x.unsqueeze(0), th).squeeze(0);
  std::vector<torch::Tensor> rows;
  for (int64_t k = 0; k < f.size(0); ++k) rows.push_back(torch::autograd::grad({f[k]}, {th}, {}, true)[0]);
  return at::stack(rows);
}

torch::Tensor brute_force_ggn(const Case& c) {
  const int64_t P = c.model->layout().size;
  auto ggn = at::zeros({P, P}, kF64);
  for (int64_t i = 0; i < c.data.size(); ++i) {
    auto J = jacobian(*c.model, c.theta, c.data.x[i]);
    auto p = at::softmax(c.model->forward(c.data.x.narrow(0, i, 1), c.theta).squeeze(0), 0);
    ggn += J.t().mm(at::diag(p) - at::outer(p, p)).mm(J);
  }
  return ggn;
}

void expect_full_and_diag_equal_brute_force(const Case& c) {
  ASSERT_EQ(c.subset.size, c.model->layout().size);  // every parameter is in the subset, in order
  auto ggn = brute_force_ggn(c);
  auto full = compute_curvature(*c.model, c.lik, c.subset, c.theta, c.data, Structure::Full, CurvatureKind::GGN, 3);
  EXPECT_TRUE(at::allclose(full.full, ggn, 1e-9, 1e-11));
  auto diag = compute_curvature(*c.model, c.lik, c.subset, c.theta, c.data, Structure::Diag, CurvatureKind::GGN, 3);
  EXPECT_TRUE(at::allclose(diag.diag, ggn.diagonal(), 1e-9, 1e-11));
  // Scale and Shift layers get their exact blocks in Kron.
  auto kron = compute_curvature(*c.model, c.lik, c.subset, c.theta, c.data, Structure::Kron, CurvatureKind::GGN, 3);
  auto dense = kron.dense();
  int exact = 0;
  for (const auto& l : c.subset.layers) {
    if (l.kind == LayerKind::Dense) continue;
    auto block = [&](const torch::Tensor& m) { return m.narrow(0, l.offset, l.out).narrow(1, l.offset, l.out); };
    EXPECT_TRUE(at::allclose(block(dense), block(ggn), 1e-9, 1e-11)) << "layer at " << l.offset;
    ++exact;
  }
  EXPECT_GT(exact, 0);
}

TEST(NetworkCurvature, ResNetFullAndDiagGgnEqualBruteForce) {
  expect_full_and_diag_equal_brute_force(make_case("resnet:8?width=2&groups=1", {1, 8, 8}, 5));
}

TEST(NetworkCurvature, TransformerFullAndDiagGgnEqualBruteForce) {
  expect_full_and_diag_equal_brute_force(make_case("transformer:1?dim=4&heads=2&patch=4&mlp=1", {1, 8, 8}, 4));
}

// A transformer over sequences of `length` token ids below `vocab`.
Case token_case(const std::string& spec, int64_t length, int64_t vocab, int64_t n) {
  Case c = make_case(spec, {length}, n);
  c.data.x = at::randint(vocab, {n, length}, at::TensorOptions().dtype(at::kLong)).to(at::kDouble);
  return c;
}

TEST(NetworkCurvature, TokenTransformerFullAndDiagGgnEqualBruteForce) {
  expect_full_and_diag_equal_brute_force(token_case("transformer:1?dim=4&heads=2&mlp=1&vocab=5", 3, 5, 4));
}

TEST(NetworkCurvature, EmbeddingKfacIsExactForOneTokenAndItsInputFactorCountsIds) {
  // One example of one token: the embedding's Kronecker block is its exact GGN block.
  auto one = token_case("transformer:1?dim=4&heads=1&mlp=1&vocab=6", 1, 6, 1);
  const auto& embed = one.subset.layers.front();
  ASSERT_EQ(one.model->layout().blocks[embed.weight_block].name, "embed.weight");
  auto ggn = brute_force_ggn(one);
  auto kron = compute_curvature(*one.model, one.lik, one.subset, one.theta, one.data, Structure::Kron,
                                CurvatureKind::GGN, 1);
  const int64_t size = embed.out * embed.in;
  auto block = [&](const torch::Tensor& m) { return m.narrow(0, embed.offset, size).narrow(1, embed.offset, size); };
  EXPECT_TRUE(at::allclose(block(kron.dense()), block(ggn), 1e-9, 1e-12));
  // With many tokens the input factor is the one-hot outer product's mean: the ids' frequencies.
  auto c = token_case("transformer:1?dim=4&heads=2&mlp=1&vocab=6", 5, 6, 7);
  auto many = compute_curvature(*c.model, c.lik, c.subset, c.theta, c.data, Structure::Kron, CurvatureKind::GGN, 3);
  auto counts = at::one_hot(c.data.x.to(at::kLong).reshape({-1}), 6).to(at::kDouble).sum(0);
  EXPECT_TRUE(at::allclose(many.kron[0].B, at::diag(counts / counts.sum()), 1e-12, 1e-14));
}

TEST(NetworkCurvature, FoldedBatchNormAndMaxPoolingHaveExactCurvature) {
  // A torchvision-style stem: convolution, a frozen-statistics BatchNorm folded into a per-channel
  // scale and shift (a Scale layer), max pooling, then global pooling and a head.
  Case c = make_case("resnet:8?width=2&groups=1", {1, 8, 8}, 4);
  std::vector<NetOp> ops = {net_conv("conv1", 1, 3, 3, 1, 1), net_norm(NetOp::ChannelAffine, "bn1", 3),
                            net_op(NetOp::ReLU), net_conv("pool", 0, 0, 2, 2, 0), net_op(NetOp::GlobalPool),
                            net_op(NetOp::Linear, "fc", 3, 3)};
  ops[3].kind = NetOp::MaxPool;
  c.model = make_network("stem", {1, 8, 8}, ops, at::kDouble);
  c.theta = c.model->init_params(3) + 0.3 * at::randn({c.model->layout().size}, kF64);
  c.subset = ParamSubset::parse("all", *c.model);
  expect_full_and_diag_equal_brute_force(c);
}

TEST(NetworkCurvature, ConvKfacWithOneExampleAtOneLocationIsTheExactBlock) {
  // patch = image side: the patch convolution sees one location, so KFAC's Kronecker product is
  // exact for one example, under either treatment of shared weights.
  auto c = make_case("transformer:1?dim=4&heads=1&patch=4&mlp=1", {2, 4, 4}, 1);
  auto ggn = brute_force_ggn(c);
  const auto& conv = c.subset.layers.front();
  ASSERT_EQ(c.model->layout().blocks[conv.weight_block].name, "patch.weight");
  for (auto sharing : {KfacSharing::Expand, KfacSharing::Reduce}) {
    auto kron = compute_curvature(*c.model, c.lik, c.subset, c.theta, c.data, Structure::Kron, CurvatureKind::GGN, 1,
                                  0, nullptr, sharing);
    auto dense = kron.dense();
    for (auto [start, size] : {std::pair<int64_t, int64_t>{conv.offset, conv.out * conv.in},
                               {conv.offset + conv.out * conv.in, conv.out}}) {
      auto block = [&](const torch::Tensor& m) { return m.narrow(0, start, size).narrow(1, start, size); };
      EXPECT_TRUE(at::allclose(block(dense), block(ggn), 1e-9, 1e-12));
    }
  }
}

TEST(NetworkCurvature, ConvKfacFactorsEqualTheirDefinitions) {
  // With several locations (Expand): A = sum over examples, directions and locations of g g^T;
  // B = the mean over examples and locations of the unfolded patch a a^T (Grosse and Martens).
  auto c = make_case("resnet:8?width=2&groups=1", {1, 8, 8}, 3);
  auto kron = compute_curvature(*c.model, c.lik, c.subset, c.theta, c.data, Structure::Kron, CurvatureKind::GGN, 2);
  const auto& stem = c.subset.layers.front();  // 3x3 convolution, padding 1, 64 locations
  auto patches = at::im2col(c.data.x, {3, 3}, {1, 1}, {1, 1}, {1, 1}).transpose(1, 2).reshape({-1, stem.in});
  EXPECT_TRUE(at::allclose(kron.kron[0].B, patches.t().mm(patches) / patches.size(0), 1e-10, 1e-12));
  // A from the GGN's output factors L (L L^T = diag p - p p^T) pulled back to the stem's outputs.
  auto A = at::zeros({stem.out, stem.out}, kF64);
  for (int64_t i = 0; i < c.data.size(); ++i) {
    auto f = c.model->forward(c.data.x.narrow(0, i, 1), c.theta);
    auto L = output_factors(c.lik, f, c.data.y.narrow(0, i, 1), CurvatureKind::GGN)[0];  // [C, C]
    auto factors = layer_factors(*c.model, c.subset, c.theta, c.data.x.narrow(0, i, 1), L.unsqueeze(0));
    auto g = factors.front().g.reshape({-1, stem.out});  // [C * locations, out]
    A += g.t().mm(g);
  }
  EXPECT_TRUE(at::allclose(kron.kron[0].A, A, 1e-10, 1e-12));
}

void expect_glm_variance_equals_dense(Structure structure) {
  auto c = make_case("transformer:1?dim=4&heads=2&patch=4&mlp=1", {1, 8, 8}, 6);
  auto curv = compute_curvature(*c.model, c.lik, c.subset, c.theta, c.data, structure, CurvatureKind::GGN, 4);
  const double delta = 0.7;
  auto H = curv.dense();
  LaplacePosterior post(c.theta, c.subset, curv, at::full({1}, delta, kF64), 1.0, 1.0);
  auto x = at::randn({12, 1, 8, 8}, kF64);  // over 8 rows: computed in slices
  torch::Tensor mu;
  auto fvar = post.function_variance(*c.model, x, false, &mu);
  EXPECT_LT((mu - c.model->forward(x, c.theta)).abs().max().item<double>(), 1e-12);
  EXPECT_TRUE(at::allclose(post.function_variance(*c.model, x, true), fvar.diagonal(0, 1, 2), 1e-10, 1e-12));
  auto cov = at::inverse(H + delta * at::eye(H.size(0), kF64));
  for (int64_t i = 0; i < x.size(0); ++i) {
    auto J = jacobian(*c.model, c.theta, x[i]);
    EXPECT_TRUE(at::allclose(fvar[i], J.mm(cov).mm(J.t()), 1e-8, 1e-10)) << "example " << i;
  }
}

TEST(NetworkCurvature, KronGlmVarianceEqualsItsDenseCovariance) { expect_glm_variance_equals_dense(Structure::Kron); }
TEST(NetworkCurvature, DiagGlmVarianceEqualsItsDenseCovariance) { expect_glm_variance_equals_dense(Structure::Diag); }

TEST(NetworkCurvature, LeNetConvolutionsHaveKfacAndAnExactDiagonal) {
  auto c = make_case("cnn:lenet", {1, 12, 12}, 4);
  auto kron = compute_curvature(*c.model, c.lik, c.subset, c.theta, c.data, Structure::Kron, CurvatureKind::GGN, 2);
  EXPECT_EQ(kron.kron.size(), 2 * c.subset.layers.size());
  EXPECT_EQ(kron.kron[0].in, 25);  // one input channel, 5x5 patches
  auto diag = compute_curvature(*c.model, c.lik, c.subset, c.theta, c.data, Structure::Diag, CurvatureKind::GGN, 2);
  auto brute = at::zeros({c.model->layout().size}, kF64);  // diag(J^T Lambda J), Lambda = V E V^T
  for (int64_t i = 0; i < c.data.size(); ++i) {
    auto J = jacobian(*c.model, c.theta, c.data.x[i]);
    auto p = at::softmax(c.model->forward(c.data.x.narrow(0, i, 1), c.theta).squeeze(0), 0);
    auto [e, V] = at::linalg_eigh(at::diag(p) - at::outer(p, p));
    brute += (e.clamp_min(0).sqrt().unsqueeze(1) * V.t().mm(J)).pow(2).sum(0);
  }
  EXPECT_TRUE(at::allclose(diag.diag, brute, 1e-9, 1e-11));
}

}  // namespace
}  // namespace credence
