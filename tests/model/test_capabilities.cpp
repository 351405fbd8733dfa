// Models offer optional capabilities; a method that needs one a model lacks says which, and who has it.
#include <gtest/gtest.h>

#include <string>

#include "credence/core/error.h"
#include "credence/model/model.h"

namespace credence {
namespace {

const std::string kFixtures = CREDENCE_TEST_DATA_DIR;

TEST(Capabilities, EachModelOffersWhatItCan) {
  auto mlp = make_model("mlp:4", {3}, 2);
  EXPECT_NE(mlp->find<LastLayerAccess>(), nullptr);
  EXPECT_NE(mlp->find<DropoutForward>(), nullptr);
  EXPECT_NE(mlp->find<GaussianForward>(), nullptr);
  EXPECT_NE(mlp->find<HandBackward>(), nullptr);
  auto cnn = make_model("cnn:lenet", {1, 28, 28}, 10);
  EXPECT_NE(cnn->find<LastLayerAccess>(), nullptr);
  EXPECT_NE(cnn->find<DropoutForward>(), nullptr);
  EXPECT_EQ(cnn->find<HandBackward>(), nullptr);  // the hand-written pass covers fully connected layers only
  auto plain = make_model("torchscript:" + kFixtures + "/tiny_plain.pt", {3}, 2);
  for (bool found : {plain->find<LastLayerAccess>() != nullptr, plain->find<DropoutForward>() != nullptr,
                     plain->find<GaussianForward>() != nullptr, plain->find<HandBackward>() != nullptr})
    EXPECT_FALSE(found);
  auto features = make_model("torchscript:" + kFixtures + "/tiny_features.pt", {3}, 2);
  EXPECT_NE(features->find<LastLayerAccess>(), nullptr);
  EXPECT_EQ(features->find<DropoutForward>(), nullptr);
}

TEST(Capabilities, AMissingOneNamesTheMethodTheCapabilityAndWhoHasIt) {
  auto plain = make_model("torchscript:" + kFixtures + "/tiny_plain.pt", {3}, 2);
  try {
    plain->require<DropoutForward>("mcdropout");
    FAIL() << "no error";
  } catch (const NotSupported& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("mcdropout needs a dropout forward, which model 'torchscript:"), std::string::npos) << m;
    EXPECT_NE(m.find("(mlp, cnn)"), std::string::npos) << m;
  }
  try {
    plain->require<LastLayerAccess>("subset=last_layer");
    FAIL() << "no error";
  } catch (const NotSupported& e) {
    EXPECT_NE(std::string(e.what()).find("@torch.jit.export"), std::string::npos) << e.what();
  }
}

TEST(ModelRegistry, FamiliesAreListedAndTheirOptionsChecked) {
  std::vector<std::string> names;
  for (const auto& f : model_registry()) names.push_back(f.name);
  EXPECT_EQ(names, (std::vector<std::string>{"mlp", "cnn", "resnet", "transformer", "torchscript"}));
  EXPECT_EQ(&find_model_family("cnn"), &model_registry()[1]);
  try {
    make_model("rnn:4", {3}, 2);
    FAIL() << "no error";
  } catch (const InvalidArgument& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("unknown model family 'rnn'"), std::string::npos) << m;
    EXPECT_NE(m.find("mlp:H1,H2,..."), std::string::npos) << m;
  }
  try {
    make_model("mlp:4?width=3", {3}, 2);
    FAIL() << "no error";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("unknown key 'width'"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace credence
