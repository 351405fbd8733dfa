// A network defined in code (an op list, no --model spec) fits, and its posterior file rebuilds it.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <filesystem>

#include "credence/core/error.h"
#include "credence/credence.h"
#include "credence/fit/fit.h"
#include "credence/model/network.h"

namespace credence {
namespace {

std::vector<NetOp> small_residual_net(int64_t head_in) {
  NetOp c1 = net_conv("features.conv1", 1, 4, 3, 2, 1), c2 = net_conv("features.conv2", 4, 4, 3, 1, 1);
  NetOp norm = net_norm(NetOp::GroupNorm, "features.norm", 4, 2);
  return {c1, norm, net_op(NetOp::ReLU), net_op(NetOp::Save), c2, net_op(NetOp::Add), net_op(NetOp::GlobalPool),
          net_op(NetOp::Linear, "classifier", head_in, 3)};
}

DataParts images(int64_t n, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  Dataset d;
  d.y = at::randint(3, {n}, gen, at::TensorOptions().dtype(at::kLong));
  d.x = at::randn({n, 1, 8, 8}, gen, at::TensorOptions().dtype(at::kDouble)) + d.y.view({n, 1, 1, 1}).to(at::kDouble);
  d.task = Task::Classification;
  d.num_classes = 3;
  d.standardize_inputs = false;
  DataParts parts;
  parts.fit = d;
  return parts;
}

TEST(CodeDefinedNetwork, FitsSavesAndLoadsFromItsArchitecture) {
  FitRequest req;
  req.data = images(40, 1);
  req.dtype = torch::kFloat64;
  req.built_model = make_network("my-net", {1, 8, 8}, small_residual_net(4), torch::kFloat64);
  req.model = "unused";
  req.method = "laplace:subset=all";
  req.train.epochs = 3;
  req.train.batch_size = 10;
  req.train.quiet = true;
  auto fitted = fit(req);
  EXPECT_EQ(fitted.model->spec(), "my-net");
  auto file = (std::filesystem::temp_directory_path() / ("credence-code-net-" + std::to_string(::getpid()))).string();
  fitted.save(file, true);
  auto loaded = FittedModel::load(file);
  std::filesystem::remove(file);
  EXPECT_EQ(loaded.model->spec(), "my-net");
  EXPECT_EQ(loaded.model->fingerprint(), fitted.model->fingerprint());
  auto test = images(15, 2).fit;
  EXPECT_TRUE(at::equal(loaded.predict(test).probs, fitted.predict(test).probs));
  EXPECT_TRUE(loaded.model->layout().find("features.norm.weight").numel == 4);
}

TEST(CodeDefinedNetwork, OpsThatDoNotChainAreRefusedUpFront) {
  try {
    make_network("bad-net", {1, 8, 8}, small_residual_net(5));
    FAIL() << "accepted a head of width 5 after 4 channels";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("do not fit together"), std::string::npos) << e.what();
  }
  FitRequest req;
  req.data = images(20, 1);
  req.built_model = make_network("my-net", {1, 8, 8}, small_residual_net(4));  // float32 vs float64 data
  req.dtype = torch::kFloat64;
  req.train.quiet = true;
  EXPECT_THROW(fit(req), InvalidArgument);
}

}  // namespace
}  // namespace credence
