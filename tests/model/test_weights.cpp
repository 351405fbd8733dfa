// Pretrained weights by name (or by position) from torch.save state dicts, and models that start
// from them. The fixtures come from tests/fixtures/make_state_dict.py (Debian's python3-torch).
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <string>

#include "credence/core/error.h"
#include "credence/model/weights.h"

namespace credence {
namespace {

const std::string kFixtures = CREDENCE_TEST_DATA_DIR;

at::Tensor from_json(const nlohmann::json& rows) {
  std::vector<double> v;
  for (const auto& r : rows)
    for (double x : r) v.push_back(x);
  return at::tensor(v, at::kDouble).view({static_cast<int64_t>(rows.size()), -1});
}

nlohmann::json reference() {
  std::ifstream in(kFixtures + "/tiny_state_dict.json");
  return nlohmann::json::parse(in);
}

TEST(Weights, AStateDictGivesThePyTorchModulesOutputs) {
  auto model = make_model("mlp:5?act=tanh", {3}, 2, torch::kFloat64);
  auto ref = reference();
  auto x = from_json(ref["x"]), expected = from_json(ref["out"]);
  // Under credence's names, and under PyTorch's own (nn.Sequential's "0.weight", ...) by position.
  auto named = weights_to_theta(*model, load_state_dict(kFixtures + "/tiny_named_state_dict.pt"), "named");
  auto positional = weights_to_theta(*model, load_state_dict(kFixtures + "/tiny_state_dict.pt"), "positional");
  EXPECT_TRUE(at::equal(named, positional));
  EXPECT_LT((model->forward(x, named) - expected).abs().max().item<double>(), 1e-12);
  // named_weights is the inverse.
  auto round_trip = weights_to_theta(*model, named_weights(*model, named), "round trip");
  EXPECT_TRUE(at::equal(round_trip, named));
}

TEST(Weights, AMismatchListsEveryNameNeverLoadsPart) {
  auto wider = make_model("mlp:6?act=tanh", {3}, 2, torch::kFloat64);
  auto weights = load_state_dict(kFixtures + "/tiny_named_state_dict.pt");
  try {
    weights_to_theta(*wider, weights, "w.pt");
    FAIL() << "no error";
  } catch (const InvalidArgument& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("wrong shape: layer0.weight is [5, 3] in the file, [6, 3] in the model"), std::string::npos) << m;
    EXPECT_NE(m.find("layer1.weight is [2, 5] in the file, [2, 6] in the model"), std::string::npos) << m;
  }
  auto model = make_model("mlp:5?act=tanh", {3}, 2, torch::kFloat64);
  auto partial = weights;
  partial.pop_back();
  partial.emplace_back("extra.weight", at::zeros({2}));
  try {
    weights_to_theta(*model, partial, "p.pt");
    FAIL() << "no error";
  } catch (const InvalidArgument& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("missing: layer1.bias"), std::string::npos) << m;
    EXPECT_NE(m.find("unexpected: extra.weight"), std::string::npos) << m;
  }
  // Positional loading needs every shape to line up.
  auto pytorch_names = load_state_dict(kFixtures + "/tiny_state_dict.pt");
  EXPECT_THROW(weights_to_theta(*wider, pytorch_names, "s.pt"), InvalidArgument);
  EXPECT_THROW(load_state_dict(kFixtures + "/tiny_reference.json"), IoError);
  EXPECT_THROW(load_state_dict(kFixtures + "/none.pt"), IoError);
}

TEST(Weights, AModelStartsFromItsWeightsAndKeepsItsCapabilities) {
  auto model = make_model("mlp:5?act=tanh", {3}, 2, torch::kFloat64);
  auto theta = weights_to_theta(*model, load_state_dict(kFixtures + "/tiny_named_state_dict.pt"), "w");
  auto started = with_initial_weights(model, theta);
  for (uint64_t seed : {0, 7}) EXPECT_TRUE(at::equal(started->init_params(seed), theta));
  EXPECT_EQ(started->spec(), model->spec());
  EXPECT_EQ(started->fingerprint(), model->fingerprint());
  EXPECT_NE(started->find<DropoutForward>(), nullptr);
  EXPECT_NE(started->find<HandBackward>(), nullptr);
  EXPECT_THROW(with_initial_weights(model, theta.narrow(0, 0, 3)), InvalidArgument);
}

}  // namespace
}  // namespace credence
