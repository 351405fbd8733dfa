// Early stopping: training ends `patience` epochs after the best validation NLL, and the fit is
// exactly the one that training for the best number of epochs gives.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include "credence/core/error.h"
#include "credence/eval/metrics.h"
#include "credence/fit/fit.h"

namespace credence {
namespace {

// Few noisy points and a wide network with a vague prior: the validation NLL turns upward.
FitRequest overfitting_request(const std::string& method) {
  FitRequest req;
  req.data = load_data("synthetic:moons?n=80&noise=0.35&holdout=val:0.5", {torch::kFloat64});
  req.model = "mlp:64,64";
  req.method = method;
  req.dtype = torch::kFloat64;
  req.train.epochs = 150;
  req.train.batch_size = 8;
  req.train.lr = 0.01;
  req.train.prior = "gaussian:1e-6";
  req.train.quiet = true;
  req.train.patience = 5;
  return req;
}

double val_nll(const FittedModel& f, const Dataset& val) {
  return classification_nll(f.predict(val).to(torch::kCPU), val.y);
}

void expect_stops_at_the_best_epoch(const std::string& method) {
  auto req = overfitting_request(method);
  auto stopped = fit(req);
  ASSERT_TRUE(stopped.info.contains("early_stopping")) << method;
  const auto& report = stopped.info.at("early_stopping");
  const int64_t best = report.at("best_epoch").get<int64_t>(), run = report.at("epochs_run").get<int64_t>();
  const auto curve = report.at("val_nll").get<std::vector<double>>();
  ASSERT_LT(run, req.train.epochs) << method << " never stopped: pick data that overfits sooner";
  EXPECT_EQ(run - best, req.train.patience) << method;
  EXPECT_EQ(static_cast<int64_t>(curve.size()), run);
  for (double v : curve) EXPECT_GE(v, curve[best - 1]) << method;
  // The kept state is the best epoch's: the same fit as training that many epochs without stopping.
  req.train.patience = 0;
  req.train.epochs = best;
  auto direct = fit(req);
  const auto& val = *req.data.val;
  EXPECT_NEAR(val_nll(stopped, val), curve[best - 1], 1e-12) << method;
  EXPECT_NEAR(val_nll(direct, val), curve[best - 1], 1e-12) << method;
  EXPECT_TRUE(at::allclose(stopped.predict(val).probs, direct.predict(val).probs, 0, 1e-12)) << method;
}

TEST(EarlyStopping, MapKeepsItsBestEpoch) { expect_stops_at_the_best_epoch("map"); }
TEST(EarlyStopping, EnsembleKeepsItsBestEpoch) { expect_stops_at_the_best_epoch("ensemble:members=2"); }
TEST(EarlyStopping, ViKeepsItsBestEpoch) { expect_stops_at_the_best_epoch("vi"); }

TEST(EarlyStopping, NeedsAValidationPartAndAMethodThatTrains) {
  auto req = overfitting_request("map");
  req.data = load_data("synthetic:moons?n=80", {torch::kFloat64});
  try {
    fit(req);
    ADD_FAILURE() << "accepted without a validation part";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("holdout=val"), std::string::npos) << e.what();
  }
  req = overfitting_request("sgld");
  try {
    fit(req);
    ADD_FAILURE() << "sgld accepted";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("sgld cannot stop early"), std::string::npos) << e.what();
  }
}

TEST(EarlyStopping, APostHocMethodStopsItsMapEarly) {
  auto req = overfitting_request("laplace");
  auto lap = fit(req);
  req.method = "map";
  auto map = fit(req);
  const auto best = map.info.at("early_stopping").at("best_epoch").get<int64_t>();
  EXPECT_LT(best, req.train.epochs);
  req.train.patience = 0;
  req.train.epochs = best;
  req.method = "laplace";
  auto direct = fit(req);
  EXPECT_TRUE(at::allclose(lap.predict(*req.data.val).probs, direct.predict(*req.data.val).probs, 0, 1e-12));
}

}  // namespace
}  // namespace credence
