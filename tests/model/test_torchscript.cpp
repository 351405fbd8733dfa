// TorchScript models saved from Python (tests/fixtures/make_torchscript.py) driven through the
// functional forward: reference outputs, gradients, features and error handling.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "credence/core/error.h"
#include "credence/model/model.h"

namespace credence {
namespace {

const std::string kDir = CREDENCE_TEST_DATA_DIR;

nlohmann::json reference() {
  std::ifstream in(kDir + "/tiny_reference.json");
  EXPECT_TRUE(in.good());
  return nlohmann::json::parse(in);
}

torch::Tensor to_tensor(const nlohmann::json& rows) {
  std::vector<float> flat;
  int64_t cols = rows.at(0).size();
  for (const auto& r : rows)
    for (const auto& v : r) flat.push_back(v.get<float>());
  return at::tensor(flat, at::kFloat).view({static_cast<int64_t>(rows.size()), cols});
}

std::shared_ptr<Model> load(const std::string& name, int64_t out = 2) {
  return make_model("torchscript:" + kDir + "/" + name + ".pt", {3}, out);
}

std::shared_ptr<Model> load_shape(const std::string& name, const std::vector<int64_t>& shape) {
  return make_model("torchscript:" + kDir + "/" + name + ".pt", shape, 2);
}

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  EXPECT_EQ(a.sizes(), b.sizes());
  return (a - b).abs().max().item<double>();
}

TEST(TorchScript, ReproducesPythonReferenceOutputs) {
  auto ref = reference();
  auto x = to_tensor(ref["x"]);
  ASSERT_EQ(x.sizes(), (std::vector<int64_t>{4, 3}));
  for (const std::string name : {"tiny_features", "tiny_plain"}) {
    auto m = load(name);
    EXPECT_EQ(m->output_dim(), 2);
    EXPECT_EQ(m->dtype(), torch::kFloat32);
    auto out = m->forward(x, m->init_params(0));
    EXPECT_LT(max_abs_diff(out, to_tensor(ref[name])), 1e-5) << name;
    // The module converts to float64 on request.
    auto m64 = make_model("torchscript:" + kDir + "/" + name + ".pt", {3}, 2, torch::kFloat64);
    auto t64 = m64->init_params(0);
    EXPECT_EQ(t64.scalar_type(), at::kDouble);
    auto out64 = m64->forward(x.to(at::kDouble), t64);
    EXPECT_EQ(out64.scalar_type(), at::kDouble);
    EXPECT_LT(max_abs_diff(out64.to(at::kFloat), to_tensor(ref[name])), 1e-5) << name;
  }
}

TEST(TorchScript, LayoutFollowsNamedParameters) {
  auto f = load("tiny_features");
  const auto& L = f->layout();
  ASSERT_EQ(L.blocks.size(), 4u);
  EXPECT_EQ(L.blocks[0].name, "body.0.weight");
  EXPECT_EQ(L.blocks[0].shape, (std::vector<int64_t>{8, 3}));
  EXPECT_EQ(L.blocks[2].name, "head.weight");
  EXPECT_EQ(L.blocks[3].offset, 24 + 8 + 16);
  EXPECT_EQ(L.size, 8 * 3 + 8 + 2 * 8 + 2);
  auto p = load("tiny_plain");
  EXPECT_EQ(p->layout().size, 3 * 4 + 4 + 4 * 2 + 2);
  EXPECT_EQ(p->layout().blocks[3].name, "net.2.bias");
  // Pretrained weights: the seed does not matter.
  EXPECT_TRUE(at::equal(p->init_params(0), p->init_params(9)));
}

TEST(TorchScript, ThetaReallyDrivesTheModule) {
  auto m = load("tiny_plain");
  auto x = to_tensor(reference()["x"]);
  auto theta = m->init_params(0);
  auto base = m->forward(x, theta);
  // Shifting the last bias by (1, -2) shifts every output row by (1, -2).
  auto shifted = theta.clone();
  const auto& b = m->layout().find("net.2.bias");
  shifted.narrow(0, b.offset, 2).add_(at::tensor({1.0f, -2.0f}));
  auto diff = m->forward(x, shifted) - base;
  EXPECT_LT(max_abs_diff(diff, at::tensor({1.0f, -2.0f}).expand({4, 2})), 1e-6);
  // Zero parameters give zero outputs.
  EXPECT_LT(m->forward(x, at::zeros_like(theta)).abs().max().item<double>(), 1e-12);
  // And the original theta still reproduces the first result (no state left behind).
  EXPECT_LT(max_abs_diff(m->forward(x, theta), base), 1e-7);
}

TEST(TorchScript, GradientsFlowToTheta) {
  for (const std::string name : {"tiny_features", "tiny_plain"}) {
    auto m = load(name);
    auto x = to_tensor(reference()["x"]);
    auto theta = m->init_params(0).requires_grad_(true);
    m->forward(x, theta).sum().backward();
    ASSERT_TRUE(theta.grad().defined()) << name;
    EXPECT_GT(theta.grad().abs().sum().item<double>(), 0.0) << name;
    // d(sum of outputs)/d(last bias) = number of rows, for each output.
    const auto& b = m->layout().blocks.back();
    EXPECT_LT(max_abs_diff(theta.grad().narrow(0, b.offset, b.numel), at::full({2}, 4.0f)), 1e-6) << name;
  }
}

TEST(TorchScript, StackedForwardEqualsSingles) {
  auto m = load("tiny_features");
  auto x = to_tensor(reference()["x"]);
  auto t0 = m->init_params(0);
  auto t1 = t0 * 0.5 + 0.1;
  auto out = m->forward(x, at::stack({t0, t1}));
  ASSERT_EQ(out.sizes(), (std::vector<int64_t>{2, 4, 2}));
  EXPECT_LT(max_abs_diff(out[0], m->forward(x, t0)), 1e-7);
  EXPECT_LT(max_abs_diff(out[1], m->forward(x, t1)), 1e-7);
}

TEST(TorchScript, FeaturesPlusLastLayerEqualsForward) {
  auto m = load("tiny_features");
  ASSERT_NE(m->find<LastLayerAccess>(), nullptr);
  auto last = m->require<LastLayerAccess>("test").last_layer();
  EXPECT_EQ(last.weight_block, 2);
  EXPECT_EQ(last.bias_block, 3);
  EXPECT_EQ(last.in_features, 8);
  EXPECT_EQ(last.out_features, 2);
  auto x = to_tensor(reference()["x"]);
  auto theta = m->init_params(0);
  const auto& L = m->layout();
  auto W = theta.narrow(0, L.blocks[2].offset, 16).view({2, 8});
  auto b = theta.narrow(0, L.blocks[3].offset, 2);
  auto f = m->require<LastLayerAccess>("test").features(x, theta);
  ASSERT_EQ(f.sizes(), (std::vector<int64_t>{4, 8}));
  EXPECT_LE(f.abs().max().item<double>(), 1.0);  // tanh features
  EXPECT_LT(max_abs_diff(at::matmul(f, W.t()) + b, m->forward(x, theta)), 1e-5);
}

TEST(TorchScript, PlainModuleHasNoFeatures) {
  auto m = load("tiny_plain");
  EXPECT_EQ(m->find<LastLayerAccess>(), nullptr);
  auto x = to_tensor(reference()["x"]);
  EXPECT_THROW(m->require<LastLayerAccess>("test").features(x, m->init_params(0)), NotSupported);
  EXPECT_THROW(m->require<LastLayerAccess>("test").last_layer(), NotSupported);
}

TEST(TorchScript, Errors) {
  EXPECT_THROW(load("tiny_plain", 3), InvalidArgument);
  EXPECT_THROW(load("tiny_features", 1), InvalidArgument);
  EXPECT_THROW(make_model("torchscript:" + kDir + "/no_such_model.pt", {3}, 2), IoError);
  // Data whose inputs the module cannot take is the caller's mistake, not an internal error.
  EXPECT_THROW(load_shape("tiny_plain", {5}), InvalidArgument);
  EXPECT_THROW(load_shape("tiny_features", {1, 28, 28}), InvalidArgument);
  try {
    load_shape("tiny_plain", {5});
  } catch (const InvalidArgument& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("[N, 5]"), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;  // one line for the CLI
  }
  // A file that is not TorchScript at all.
  EXPECT_THROW(make_model("torchscript:" + kDir + "/tiny_reference.json", {3}, 2), IoError);
  auto m = load("tiny_plain");
  EXPECT_THROW(m->forward(to_tensor(reference()["x"]), at::zeros({5})), InvalidArgument);
  auto a = load("tiny_plain")->fingerprint();
  EXPECT_EQ(a, m->fingerprint());
  EXPECT_NE(a, load("tiny_features")->fingerprint());
}

}  // namespace
}  // namespace credence
