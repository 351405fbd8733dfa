// Frozen parameters: out of theta, fixed in the forward, and every capability in trainable coordinates.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "credence/core/error.h"
#include "credence/model/frozen.h"

namespace credence {
namespace {

const auto kF64 = at::TensorOptions().dtype(at::kDouble);

double max_diff(const at::Tensor& a, const at::Tensor& b) { return (a - b).abs().max().item<double>(); }

TEST(Frozen, TrainableTensorsOnlyAndTheForwardOfTheWholeModel) {
  auto inner = make_model("mlp:5,4", {3}, 2, torch::kFloat64);
  auto values = inner->init_params(1);
  auto m = freeze_parameters(inner, "layer0", values);
  ASSERT_EQ(m->layout().blocks.size(), 4u);
  EXPECT_EQ(m->layout().blocks[0].name, "layer1.weight");
  EXPECT_EQ(m->layout().size, inner->layout().size - 5 * 3 - 5);
  EXPECT_NE(m->fingerprint(), inner->fingerprint());
  const auto& fp = m->require<FrozenParameters>("test");
  auto theta = m->init_params(7);
  auto full = fp.full_theta(theta);
  // The frozen layer keeps the given values; the trainable ones come from theta.
  EXPECT_TRUE(at::equal(full.narrow(0, 0, 20), values.narrow(0, 0, 20)));
  EXPECT_TRUE(at::equal(full.narrow(0, 20, theta.size(0)), theta));
  auto x = at::randn({6, 3}, kF64);
  EXPECT_LT(max_diff(m->forward(x, theta), inner->forward(x, full)), 1e-14);
  auto thetas = at::stack({theta, m->init_params(8)});
  auto out = m->forward(x, thetas);
  for (int s = 0; s < 2; ++s) EXPECT_LT(max_diff(out[s], m->forward(x, thetas[s])), 1e-14);
  // Gradients reach only the trainable tensors, and equal the whole model's for them.
  auto t = theta.clone().requires_grad_(true);
  m->forward(x, t).square().sum().backward();
  auto f = full.clone().requires_grad_(true);
  inner->forward(x, f).square().sum().backward();
  EXPECT_LT(max_diff(t.grad(), f.grad().narrow(0, 20, theta.size(0))), 1e-12);
}

TEST(Frozen, CapabilitiesWorkInTrainableCoordinates) {
  auto inner = make_model("mlp:5,4?act=tanh", {3}, 2, torch::kFloat64);
  auto m = freeze_parameters(inner, "layer0", inner->init_params(1));
  auto theta = m->init_params(2);
  auto x = at::randn({6, 3}, kF64);
  // Last layer: features then the remapped final layer give the forward.
  const auto& ll = m->require<LastLayerAccess>("test");
  auto last = ll.last_layer();
  const auto& wb = m->layout().blocks[last.weight_block];
  const auto& bb = m->layout().blocks[last.bias_block];
  auto W = theta.narrow(0, wb.offset, wb.numel).view({last.out_features, last.in_features});
  auto out = at::linear(ll.features(x, theta), W, theta.narrow(0, bb.offset, bb.numel));
  EXPECT_LT(max_diff(out, m->forward(x, theta)), 1e-12);
  // The hand-written backward equals autograd.
  const auto& hb = m->require<HandBackward>("test");
  ForwardTrace trace;
  auto g = at::randn({6, 2}, kF64);
  auto y = hb.forward_reusing(x, theta, trace);
  EXPECT_LT(max_diff(y, m->forward(x, theta)), 1e-12);
  auto grad = at::empty_like(theta);
  auto g_copy = g.clone();
  hb.backward(trace, theta, g_copy, grad);
  auto t = theta.clone().requires_grad_(true);
  (m->forward(x, t) * g).sum().backward();
  EXPECT_LT(max_diff(grad, t.grad()), 1e-12);
  // A zero spread in the Gaussian forward is the plain forward; dropout at rate 0 likewise.
  auto gauss = m->require<GaussianForward>("test").forward_gaussian(x, theta, at::zeros_like(theta), 3);
  EXPECT_LT(max_diff(gauss, m->forward(x, theta)), 1e-12);
  // layer0's weight is a dropout block, and frozen: MC dropout cannot apply to this model.
  EXPECT_EQ(m->find<DropoutForward>(), nullptr);
  auto head_frozen = freeze_parameters(inner, "layer2", inner->init_params(1));
  EXPECT_EQ(head_frozen->find<LastLayerAccess>(), nullptr);  // a frozen last layer is no last layer to infer
}

TEST(Frozen, PatternsThatFreezeNothingEverythingOrHalfALayerAreRefused) {
  auto inner = make_model("mlp:5", {3}, 2, torch::kFloat64);
  auto v = inner->init_params(0);
  EXPECT_THROW(freeze_parameters(inner, "layer9", v), InvalidArgument);
  EXPECT_THROW(freeze_parameters(inner, "layer0,layer1", v), InvalidArgument);
  try {
    freeze_parameters(inner, "layer0.weight", v);
    FAIL() << "no error";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("freezes layer0.weight but not layer0.bias"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(freeze_parameters(inner, "layer0.weight,layer0.bias", v));
}

}  // namespace
}  // namespace credence
