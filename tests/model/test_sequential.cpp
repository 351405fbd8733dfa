// Credence's own networks (mlp, cnn:lenet): functional forward against hand-written layers,
// stacked evaluation, features, traces, layouts, initialization and spec validation.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cmath>

#include "credence/core/error.h"
#include "credence/model/model.h"

namespace credence {
namespace {

const auto kF64 = at::TensorOptions().dtype(at::kDouble);

torch::Tensor block(const Model& m, const torch::Tensor& theta, const std::string& name) {
  const auto& b = m.layout().find(name);
  return theta.narrow(0, b.offset, b.numel).view(b.shape);
}

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  EXPECT_EQ(a.sizes(), b.sizes());
  return (a - b).abs().max().item<double>();
}

TEST(Mlp, LayoutSizesAndNames) {
  auto m = make_model("mlp:5", {3}, 2);
  const auto& L = m->layout();
  EXPECT_EQ(L.size, 3 * 5 + 5 + 5 * 2 + 2);
  EXPECT_EQ(L.num_layers, 2);
  ASSERT_EQ(L.blocks.size(), 4u);
  const std::vector<std::string> names = {"layer0.weight", "layer0.bias", "layer1.weight", "layer1.bias"};
  const std::vector<std::vector<int64_t>> shapes = {{5, 3}, {5}, {2, 5}, {2}};
  const std::vector<int64_t> offsets = {0, 15, 20, 30};
  const std::vector<int> layers = {0, 0, 1, 1};
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(L.blocks[i].name, names[i]);
    EXPECT_EQ(L.blocks[i].shape, shapes[i]);
    EXPECT_EQ(L.blocks[i].offset, offsets[i]);
    EXPECT_EQ(L.blocks[i].layer, layers[i]);
  }
  EXPECT_EQ(L.numels(), (std::vector<int64_t>{15, 5, 10, 2}));
  EXPECT_EQ(L.find("layer1.weight").offset, 20);
  EXPECT_THROW(L.find("layer9.weight"), InvalidArgument);
  auto last = m->require<LastLayerAccess>("test").last_layer();
  EXPECT_EQ(last.weight_block, 2);
  EXPECT_EQ(last.bias_block, 3);
  EXPECT_EQ(last.in_features, 5);
  EXPECT_EQ(last.out_features, 2);
  EXPECT_EQ(m->output_dim(), 2);
  EXPECT_EQ(m->input_shape(), (std::vector<int64_t>{3}));
  EXPECT_EQ(m->spec(), "mlp:5");

  // mlp: with no hidden sizes is a linear model: weight [O, D] and bias [O].
  auto lin = make_model("mlp:", {4}, 1);
  EXPECT_EQ(lin->layout().size, 5);
  EXPECT_EQ(lin->layout().num_layers, 1);
}

TEST(Cnn, LenetLayoutMatchesClassicCount) {
  auto m = make_model("cnn:lenet", {1, 28, 28}, 10);
  const auto& L = m->layout();
  EXPECT_EQ(L.num_layers, 5);
  // conv 1->6 k5, conv 6->16 k5, fc 16*5*5->120, 120->84, 84->10
  EXPECT_EQ(L.size, (6 * 25 + 6) + (16 * 6 * 25 + 16) + (400 * 120 + 120) + (120 * 84 + 84) + (84 * 10 + 10));
  EXPECT_EQ(L.size, 61706);
  EXPECT_EQ(L.find("layer1.weight").shape, (std::vector<int64_t>{16, 6, 5, 5}));
  EXPECT_EQ(L.find("layer2.weight").shape, (std::vector<int64_t>{120, 400}));
  EXPECT_EQ(m->require<LastLayerAccess>("test").last_layer().in_features, 84);
}

TEST(Mlp, ForwardEqualsHandWrittenLayers) {
  for (const std::string act : {"relu", "tanh"}) {
    auto m = make_model("mlp:5?act=" + act, {3}, 2, torch::kFloat64);
    auto theta = m->init_params(7);
    auto x = at::randn({6, 3}, kF64);
    auto W0 = block(*m, theta, "layer0.weight"), b0 = block(*m, theta, "layer0.bias");
    auto W1 = block(*m, theta, "layer1.weight"), b1 = block(*m, theta, "layer1.bias");
    auto pre = at::matmul(x, W0.t()) + b0;
    auto h = act == "relu" ? pre.clamp_min(0.0) : at::tanh(pre);
    auto expected = at::matmul(h, W1.t()) + b1;
    auto out = m->forward(x, theta);
    ASSERT_EQ(out.sizes(), (std::vector<int64_t>{6, 2}));
    EXPECT_LT(max_abs_diff(out, expected), 1e-12) << act;
    // one element by explicit sums
    double s = b1[1].item<double>();
    for (int j = 0; j < 5; ++j) {
      double a = b0[j].item<double>();
      for (int k = 0; k < 3; ++k) a += W0[j][k].item<double>() * x[2][k].item<double>();
      s += W1[1][j].item<double>() * (act == "relu" ? std::max(a, 0.0) : std::tanh(a));
    }
    EXPECT_NEAR(out[2][1].item<double>(), s, 1e-12) << act;
  }
}

TEST(Mlp, HandWrittenBackwardEqualsAutograd) {
  // Two hidden layers, image-shaped inputs (flattened first), both activations: the gradient of
  // sum(out * g) with respect to theta, twice through the same buffers at different theta.
  for (const std::string act : {"relu", "tanh"}) {
    auto m = make_model("mlp:7,4?act=" + act, {2, 3}, 3, torch::kFloat64);
    ASSERT_NE(m->find<HandBackward>(), nullptr);
    auto x = at::randn({9, 2, 3}, kF64);
    ForwardTrace trace;
    for (uint64_t seed : {5, 6}) {
      auto theta = m->init_params(seed).requires_grad_(true);
      auto g = at::randn({9, 3}, kF64);
      auto expected_out = m->forward(x, theta);
      (expected_out * g).sum().backward();
      auto out = m->require<HandBackward>("test").forward_reusing(x, theta.detach(), trace);
      EXPECT_LT(max_abs_diff(out, expected_out.detach()), 1e-12) << act;
      auto grad = at::empty({m->layout().size}, kF64);
      m->require<HandBackward>("test").backward(trace, theta.detach(), g, grad);
      EXPECT_LT(max_abs_diff(grad, theta.grad()), 1e-12) << act << " " << seed;
    }
  }
  auto cnn = make_model("cnn:lenet", {1, 28, 28}, 10);
  EXPECT_EQ(cnn->find<HandBackward>(), nullptr);
  ForwardTrace trace;
  auto g = at::zeros({1, 10});
  auto grad = at::zeros({cnn->layout().size});
  EXPECT_THROW(cnn->require<HandBackward>("test").backward(trace, cnn->init_params(0), g, grad), NotSupported);
}

TEST(Mlp, FlattensImageInputs) {
  auto m = make_model("mlp:4", {2, 3}, 1, torch::kFloat64);
  auto theta = m->init_params(1);
  auto x = at::randn({5, 2, 3}, kF64);
  EXPECT_LT(max_abs_diff(m->forward(x, theta), m->forward(x.reshape({5, 6}), theta)), 1e-14);
}

void expect_stacked_matches_singles(const Model& m, const torch::Tensor& x) {
  const int64_t S = 3;
  auto thetas = at::stack({m.init_params(1), m.init_params(2), m.init_params(3)});
  auto out = m.forward(x, thetas);
  ASSERT_EQ(out.dim(), 3);
  ASSERT_EQ(out.size(0), S);
  ASSERT_EQ(out.size(1), x.size(0));
  auto feats = m.require<LastLayerAccess>("test").features(x, thetas);
  for (int64_t s = 0; s < S; ++s) {
    EXPECT_LT(max_abs_diff(out[s], m.forward(x, thetas[s])), 1e-10) << m.spec() << " s=" << s;
    EXPECT_LT(max_abs_diff(feats[s], m.require<LastLayerAccess>("test").features(x, thetas[s])), 1e-10) << m.spec() << " s=" << s;
  }
}

TEST(Model, StackedForwardEqualsSingleForwards) {
  expect_stacked_matches_singles(*make_model("mlp:", {3}, 2, torch::kFloat64), at::randn({7, 3}, kF64));
  expect_stacked_matches_singles(*make_model("mlp:5", {3}, 2, torch::kFloat64), at::randn({7, 3}, kF64));
  expect_stacked_matches_singles(*make_model("mlp:8,4?act=tanh", {3}, 3, torch::kFloat64),
                                 at::randn({7, 3}, kF64));
  expect_stacked_matches_singles(*make_model("cnn:lenet", {1, 28, 28}, 10, torch::kFloat64),
                                 at::rand({4, 1, 28, 28}, kF64));
}

// One input set per parameter vector: x [S, N, ...] with theta [S, P].
void expect_per_set_inputs_match_singles(const Model& m, const torch::Tensor& xs) {
  const int64_t S = xs.size(0);
  std::vector<torch::Tensor> thetas;
  for (int64_t s = 0; s < S; ++s) thetas.push_back(m.init_params(10 + s));
  auto out = m.forward(xs, at::stack(thetas));
  ASSERT_EQ(out.size(0), S);
  for (int64_t s = 0; s < S; ++s) EXPECT_LT(max_abs_diff(out[s], m.forward(xs[s], thetas[s])), 1e-10) << m.spec();
}

TEST(Model, PerSetInputsEqualSingleForwards) {
  expect_per_set_inputs_match_singles(*make_model("mlp:5", {3}, 2, torch::kFloat64), at::randn({3, 7, 3}, kF64));
  expect_per_set_inputs_match_singles(*make_model("mlp:8,4?act=tanh", {2, 2}, 3, torch::kFloat64),
                                      at::randn({2, 5, 2, 2}, kF64));
  expect_per_set_inputs_match_singles(*make_model("cnn:lenet", {1, 28, 28}, 10, torch::kFloat64),
                                      at::rand({3, 4, 1, 28, 28}, kF64));
  auto m = make_model("mlp:5", {3}, 2, torch::kFloat64);
  EXPECT_THROW(m->forward(at::randn({2, 7, 3}, kF64), at::stack({m->init_params(1), m->init_params(2),
                                                                  m->init_params(3)})),
               InvalidArgument);
}

void expect_features_then_last_layer_is_forward(const Model& m, const torch::Tensor& x) {
  ASSERT_NE(m.find<LastLayerAccess>(), nullptr);
  auto theta = m.init_params(5);
  auto last = m.require<LastLayerAccess>("test").last_layer();
  const auto& wb = m.layout().blocks[last.weight_block];
  const auto& bb = m.layout().blocks[last.bias_block];
  auto W = theta.narrow(0, wb.offset, wb.numel).view({last.out_features, last.in_features});
  auto b = theta.narrow(0, bb.offset, bb.numel);
  auto f = m.require<LastLayerAccess>("test").features(x, theta);
  ASSERT_EQ(f.sizes(), (std::vector<int64_t>{x.size(0), last.in_features}));
  EXPECT_LT(max_abs_diff(at::matmul(f, W.t()) + b, m.forward(x, theta)), 1e-10) << m.spec();
}

TEST(Model, FeaturesThenLastLayerEqualsForward) {
  expect_features_then_last_layer_is_forward(*make_model("mlp:6,5", {3}, 2, torch::kFloat64),
                                             at::randn({9, 3}, kF64));
  expect_features_then_last_layer_is_forward(*make_model("cnn:lenet", {1, 28, 28}, 10, torch::kFloat64),
                                             at::rand({3, 1, 28, 28}, kF64));
  // A linear model's features are its (flattened) inputs.
  auto lin = make_model("mlp:", {3}, 1, torch::kFloat64);
  auto x = at::randn({4, 3}, kF64);
  EXPECT_LT(max_abs_diff(lin->require<LastLayerAccess>("test").features(x, lin->init_params(0)), x), 1e-15);
}

TEST(Model, TraceRecordsLayerInputsAndPreActivations) {
  auto m = make_model("mlp:5,4", {3}, 2, torch::kFloat64);
  auto theta = m->init_params(3);
  auto x = at::randn({6, 3}, kF64);
  ForwardTrace trace;
  auto out = m->forward(x, theta, &trace);
  ASSERT_EQ(trace.inputs.size(), 3u);
  ASSERT_EQ(trace.outputs.size(), 3u);
  EXPECT_LT(max_abs_diff(trace.inputs[0], x), 1e-15);
  for (int l = 0; l < 3; ++l) {
    auto W = block(*m, theta, "layer" + std::to_string(l) + ".weight");
    auto b = block(*m, theta, "layer" + std::to_string(l) + ".bias");
    EXPECT_LT(max_abs_diff(trace.outputs[l], at::matmul(trace.inputs[l], W.t()) + b), 1e-12) << l;
    if (l < 2) {  // the next layer's input is the activation of this pre-activation
      EXPECT_LT(max_abs_diff(trace.inputs[l + 1], trace.outputs[l].clamp_min(0.0)), 1e-15) << l;
      EXPECT_LT(trace.outputs[l].min().item<double>(), 0.0) << "pre-activations keep negatives";
    }
  }
  EXPECT_LT(max_abs_diff(trace.outputs[2], out), 1e-15);

  // Outputs stay differentiable with respect to theta.
  auto t = theta.clone().requires_grad_(true);
  ForwardTrace tr;
  m->forward(x, t, &tr);
  tr.outputs[0].sum().backward();
  ASSERT_TRUE(t.grad().defined());
  // d/d b0 of sum(pre-activation 0) = N for every bias entry
  auto gb0 = block(*m, t.grad(), "layer0.bias");
  EXPECT_LT(max_abs_diff(gb0, at::full({5}, 6.0, kF64)), 1e-12);

  // A stacked forward records nothing.
  ForwardTrace none;
  m->forward(x, at::stack({theta, theta}), &none);
  EXPECT_TRUE(none.inputs.empty());
  EXPECT_TRUE(none.outputs.empty());
}

TEST(Cnn, TraceShapesAndConvPreActivation) {
  auto m = make_model("cnn:lenet", {1, 28, 28}, 10, torch::kFloat64);
  auto theta = m->init_params(0);
  auto x = at::rand({2, 1, 28, 28}, kF64);
  ForwardTrace trace;
  auto out = m->forward(x, theta, &trace);
  ASSERT_EQ(trace.outputs.size(), 5u);
  EXPECT_EQ(trace.outputs[0].sizes(), (std::vector<int64_t>{2, 6, 28, 28}));
  // A convolution records its unfolded patches [N, locations, in * k * k].
  EXPECT_EQ(trace.inputs[1].sizes(), (std::vector<int64_t>{2, 100, 6 * 25}));
  EXPECT_EQ(trace.outputs[1].sizes(), (std::vector<int64_t>{2, 16, 10, 10}));
  EXPECT_EQ(trace.inputs[2].sizes(), (std::vector<int64_t>{2, 400}));
  auto pre0 = at::conv2d(x, block(*m, theta, "layer0.weight"), block(*m, theta, "layer0.bias"), 1, 2);
  EXPECT_LT(max_abs_diff(trace.outputs[0], pre0), 1e-12);
  // The patches times the flattened kernel are the convolution.
  auto pooled = at::max_pool2d(pre0.clamp_min(0.0), {2, 2});
  auto W1 = block(*m, theta, "layer1.weight").reshape({16, -1});
  auto via_patches = trace.inputs[1].matmul(W1.t()) + block(*m, theta, "layer1.bias");
  EXPECT_LT(max_abs_diff(via_patches, trace.outputs[1].flatten(2).transpose(1, 2)), 1e-12);
  EXPECT_LT(max_abs_diff(trace.inputs[1], at::im2col(pooled, {5, 5}, {1, 1}, {0, 0}, {1, 1}).transpose(1, 2)), 1e-12);
  EXPECT_LT(max_abs_diff(trace.outputs[4], out), 1e-15);
}

TEST(Model, InitParamsDeterministicAndWithinBound) {
  auto m = make_model("mlp:100", {3}, 2);
  auto a = m->init_params(11), b = m->init_params(11), c = m->init_params(12);
  EXPECT_TRUE(at::equal(a, b));
  EXPECT_FALSE(at::equal(a, c));
  EXPECT_EQ(a.scalar_type(), at::kFloat);
  // PyTorch default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias.
  for (const auto& [name, fan_in] : std::vector<std::pair<std::string, double>>{
           {"layer0.weight", 3}, {"layer0.bias", 3}, {"layer1.weight", 100}, {"layer1.bias", 100}}) {
    double bound = 1.0 / std::sqrt(fan_in);
    auto v = block(*m, a, name).to(at::kDouble).abs();
    EXPECT_LE(v.max().item<double>(), bound + 1e-7) << name;
    if (name == "layer0.weight" || name == "layer1.weight")  // large blocks fill the range
      EXPECT_GT(v.max().item<double>(), 0.8 * bound) << name;
  }
  // mean of |U(-B, B)| is B/2
  EXPECT_NEAR(block(*m, a, "layer1.weight").abs().mean().item<double>(), 0.05, 0.01);

  auto cnn = make_model("cnn:lenet", {1, 28, 28}, 10);
  auto t = cnn->init_params(0);
  EXPECT_LE(block(*cnn, t, "layer0.weight").abs().max().item<double>(), 1.0 / 5 + 1e-7);         // fan_in 25
  EXPECT_GT(block(*cnn, t, "layer0.weight").abs().max().item<double>(), 0.8 / 5);
  EXPECT_LE(block(*cnn, t, "layer1.weight").abs().max().item<double>(), 1.0 / std::sqrt(150.0) + 1e-7);
  EXPECT_TRUE(at::equal(t, cnn->init_params(0)));
}

TEST(Model, BadSpecsThrowInvalidArgument) {
  EXPECT_THROW(make_model("resnet:50", {3}, 2), InvalidArgument);
  EXPECT_THROW(make_model("mlp:0", {3}, 2), InvalidArgument);
  EXPECT_THROW(make_model("mlp:-4", {3}, 2), InvalidArgument);
  EXPECT_THROW(make_model("mlp:abc", {3}, 2), InvalidArgument);
  EXPECT_THROW(make_model("mlp:5,,5", {3}, 2), InvalidArgument);
  EXPECT_THROW(make_model("mlp:5?act=sigmoid", {3}, 2), InvalidArgument);
  EXPECT_THROW(make_model("mlp:5?width=3", {3}, 2), InvalidArgument);
  EXPECT_THROW(make_model("mlp:5", {3}, 0), InvalidArgument);
  EXPECT_THROW(make_model("cnn:lenet", {3}, 2), InvalidArgument);
  EXPECT_THROW(make_model("cnn:lenet", {1, 8, 8}, 2), InvalidArgument);
  EXPECT_THROW(make_model("cnn:alexnet", {1, 28, 28}, 2), InvalidArgument);
  EXPECT_THROW(make_model("torchscript:", {3}, 2), InvalidArgument);
  try {
    make_model("mlp:5?act=sigmoid", {3}, 2);
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("sigmoid"), std::string::npos) << e.what();
  }
  auto m = make_model("mlp:5", {3}, 2);
  EXPECT_THROW(m->forward(at::randn({2, 3}), at::zeros({31})), InvalidArgument);
}

TEST(Model, FingerprintIdentifiesArchitecture) {
  auto a = make_model("mlp:5", {3}, 2)->fingerprint();
  EXPECT_EQ(a, make_model("mlp:5", {3}, 2)->fingerprint());
  EXPECT_EQ(a.size(), 16u);
  EXPECT_NE(a, make_model("mlp:6", {3}, 2)->fingerprint());
  EXPECT_NE(a, make_model("mlp:5", {4}, 2)->fingerprint());
  EXPECT_NE(a, make_model("mlp:5", {3}, 3)->fingerprint());
  EXPECT_NE(a, make_model("mlp:5?act=tanh", {3}, 2)->fingerprint());
  EXPECT_NE(a, make_model("mlp:5,5", {3}, 2)->fingerprint());
  EXPECT_NE(make_model("cnn:lenet", {1, 28, 28}, 10)->fingerprint(),
            make_model("cnn:lenet", {1, 32, 32}, 10)->fingerprint());
}

}  // namespace
}  // namespace credence

namespace credence {
namespace {

// Stacked parameters seen twice are laid out once and reused; the result is the same, and a
// change to the parameters in place is seen.
TEST(Mlp, RepeatedStackedParametersGiveTheSameOutputsAndSeeInPlaceChanges) {
  auto m = make_model("mlp:7,5", {4}, 3, torch::kFloat64);
  auto thetas = at::stack({m->init_params(1), m->init_params(2), m->init_params(3)});
  auto x = at::randn({6, 4}, at::kDouble);
  at::NoGradGuard no_grad;
  for (int call = 0; call < 3; ++call) {
    auto out = m->forward(x, thetas);
    for (int s = 0; s < 3; ++s)
      EXPECT_LT((out[s] - m->forward(x, thetas[s])).abs().max().item<double>(), 1e-12) << "call " << call;
  }
  thetas.mul_(0.5);
  auto out = m->forward(x, thetas);
  for (int s = 0; s < 3; ++s) EXPECT_LT((out[s] - m->forward(x, thetas[s])).abs().max().item<double>(), 1e-12);
}

}  // namespace
}  // namespace credence

namespace credence {
namespace {

TEST(Sequential, BlockForwardEqualsForwardAndItsGradient) {
  // mlp and LeNet through one tensor per block, single and stacked, as leaves of their own (as
  // the bucketed data-parallel reduction passes them): the outputs and theta's gradient agree.
  for (auto [spec, shape] : {std::pair<std::string, std::vector<int64_t>>{"mlp:6,5", {2, 3}},
                             std::pair<std::string, std::vector<int64_t>>{"cnn:lenet", {1, 28, 28}}}) {
    auto m = make_model(spec, shape, 3, torch::kFloat64);
    const auto& blocks = m->require<BlockForward>("this test");
    for (int64_t S : {0, 3}) {
      auto theta = S == 0 ? m->init_params(1) : at::stack({m->init_params(1), m->init_params(2), m->init_params(3)});
      auto x_shape = shape;
      x_shape.insert(x_shape.begin(), 4);
      auto x = at::randn(x_shape, at::kDouble);
      auto whole = theta.clone().requires_grad_(true);
      m->forward(x, whole).pow(2).sum().backward();
      std::vector<torch::Tensor> parts;
      for (const auto& b : m->layout().blocks)
        parts.push_back(theta.narrow(-1, b.offset, b.numel).clone().requires_grad_(true));
      auto out = blocks.forward_blocks(x, parts, nullptr);
      EXPECT_TRUE(at::allclose(out, m->forward(x, theta), 1e-12, 1e-12)) << spec << " S=" << S;
      out.pow(2).sum().backward();
      for (size_t i = 0; i < parts.size(); ++i) {
        const auto& b = m->layout().blocks[i];
        EXPECT_TRUE(at::allclose(parts[i].grad(), whole.grad().narrow(-1, b.offset, b.numel), 1e-12, 1e-12))
            << spec << " S=" << S << " " << b.name;
      }
    }
    auto parts = m->init_params(0).split_with_sizes(m->layout().numels());
    parts.pop_back();
    EXPECT_THROW(blocks.forward_blocks(at::zeros({1, 2, 3}), parts, nullptr), InvalidArgument);
  }
}

}  // namespace
}  // namespace credence
