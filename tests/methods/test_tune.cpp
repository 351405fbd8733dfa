// --tune: a coordinate search over the step size, weight decay and the method's own options, each
// candidate scored by its validation NLL; the best candidate's fit is the answer.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <fmt/format.h>

#include "credence/core/error.h"
#include "credence/fit/fit.h"

namespace credence {
namespace {

FitRequest moons_request(const std::string& method) {
  FitRequest req;
  req.data = load_data("synthetic:moons?n=160&noise=0.3&holdout=val:0.25", {torch::kFloat64});
  req.model = "mlp:16";
  req.method = method;
  req.dtype = torch::kFloat64;
  req.train.epochs = 30;
  req.train.batch_size = 16;
  req.train.quiet = true;
  req.train.tune = true;
  return req;
}

TEST(Tune, ReturnsTheBestTrialWhichIsTheFitOfItsValues) {
  auto req = moons_request("map");
  auto tuned = fit(req);
  const auto& chosen = tuned.info.at("tuned");
  ASSERT_TRUE(chosen.contains("lr") && chosen.contains("weight_decay")) << chosen.dump();
  const auto& trials = tuned.info.at("tuning").at("trials");
  EXPECT_EQ(trials.size(), 1u + 2u + 5u);  // the start, two more steps, five more weight decays
  double lowest = 1e300;
  for (const auto& t : trials) lowest = std::min(lowest, t.at("val_nll").get<double>());
  const double own = validation_nll(tuned, *req.data.val);
  EXPECT_NEAR(own, lowest, 1e-12);
  EXPECT_NEAR(tuned.info.at("tuning").at("val_nll").get<double>(), lowest, 1e-12);
  // The same values given by hand (with the search's early stopping) give the same fit.
  FitRequest direct = req;
  direct.train.tune = false;
  direct.train.patience = 5;
  direct.train.lr = chosen.at("lr").get<double>();
  direct.train.prior = fmt::format("gaussian:{:.17g}", chosen.at("weight_decay").get<double>() *
                                                                  static_cast<double>(req.data.fit.size()));
  auto by_hand = fit(direct);
  EXPECT_TRUE(at::allclose(by_hand.predict(*req.data.val).probs, tuned.predict(*req.data.val).probs, 0, 1e-12));
}

TEST(Tune, PatienceGrowsWithTheEpochBudget) {
  auto req = moons_request("map");
  EXPECT_EQ(fit(req).info.at("early_stopping").at("patience").get<int64_t>(), 5);  // 10 epochs: at least 5
  req.train.epochs = 200;
  EXPECT_EQ(fit(req).info.at("early_stopping").at("patience").get<int64_t>(), 10);
}

TEST(Tune, KeepsWhatTheUserGaveAndSearchesTheMethodsOwnOptions) {
  auto req = moons_request("ivon");
  req.train.lr = 0.05;
  req.train.prior = "gaussian:2";
  auto ivon = fit(req);
  const auto& chosen = ivon.info.at("tuned");
  EXPECT_FALSE(chosen.contains("lr"));
  EXPECT_FALSE(chosen.contains("weight_decay"));
  ASSERT_TRUE(chosen.contains("hess_init")) << chosen.dump();
  // The defaults once, then hess_init 0.1, 1, 10, beta2 0.999, clip 0.01 and 8 samples per step.
  EXPECT_EQ(ivon.info.at("tuning").at("trials").size(), 7u);
  req.method = "ivon:hess_init=0.5,beta2=0.999,clip=0,mc_samples=1";
  EXPECT_TRUE(fit(req).info.at("tuned").empty());
}

TEST(Tune, APostHocMethodTunesTheMapItStartsFrom) {
  auto lap = fit(moons_request("laplace"));
  const auto& chosen = lap.info.at("tuned");
  EXPECT_TRUE(chosen.contains("map.lr") && chosen.contains("map.weight_decay")) << chosen.dump();
}

TEST(Tune, NeedsAValidationPart) {
  auto req = moons_request("map");
  req.data = load_data("synthetic:moons?n=160", {torch::kFloat64});
  try {
    fit(req);
    ADD_FAILURE() << "tuned without a validation part";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("holdout=val"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace credence
