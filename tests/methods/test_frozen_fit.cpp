// Fitting with frozen parameters: they stay at their values through every kind of method, and the
// posterior file keeps them, so the model rebuilds and predicts the same after loading.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "credence/core/error.h"
#include "credence/fit/fit.h"
#include "credence/model/frozen.h"

namespace credence {
namespace {

FittedModel fit_frozen(const std::string& method, const std::string& data = "synthetic:moons?n=200") {
  FitRequest req;
  req.data = load_data(data, {torch::kFloat64});
  req.model = "mlp:8,8";
  req.method = method;
  req.freeze = "layer0";
  req.dtype = torch::kFloat64;
  req.train.epochs = 3;
  req.train.batch_size = 50;
  req.train.lr = 0.01;
  req.train.quiet = true;
  return fit(req);
}

TEST(FrozenFit, EveryKindOfMethodLeavesFrozenWeightsAloneAndRoundTrips) {
  // The frozen layer0 starts (and must stay) at the model's initialization with the fit's seed.
  auto initial = make_model("mlp:8,8", {2}, 2, torch::kFloat64)->init_params(0).narrow(0, 0, 8 * 2 + 8);
  const auto dir = std::filesystem::temp_directory_path() / "credence_frozen_fit";
  std::filesystem::create_directories(dir);
  for (const std::string method : {"map", "laplace:subset=all,hessian=kron", "laplace", "vi",
                                   "nuts:chains=2,warmup=20,draws=20", "ensemble:members=2", "swag"}) {
    SCOPED_TRACE(method);
    auto f = fit_frozen(method);
    const auto& frozen = f.model->require<FrozenParameters>("test");
    EXPECT_TRUE(at::equal(frozen.frozen_values().narrow(0, 0, initial.size(0)), initial));
    EXPECT_EQ(f.model->layout().size, 8 * 8 + 8 + 2 * 8 + 2);
    auto test = load_data("synthetic:moons?n=50&part=test", {torch::kFloat64}).fit;
    auto before = f.predict(test, {8, 3});
    auto file = (dir / "f.crd").string();
    f.save(file, true);
    auto loaded = FittedModel::load(file);
    ASSERT_NE(loaded.model->find<FrozenParameters>(), nullptr);
    EXPECT_EQ(loaded.model->fingerprint(), f.model->fingerprint());
    auto after = loaded.predict(test, {8, 3});
    EXPECT_TRUE(at::allclose(before.probs, after.probs, 1e-12, 1e-12));
  }
  std::filesystem::remove_all(dir);
}

TEST(FrozenFit, MethodsThatNeedAFrozenCapabilitySaySo) {
  try {
    fit_frozen("mcdropout");
    FAIL() << "no error";
  } catch (const NotSupported& e) {
    EXPECT_NE(std::string(e.what()).find("mcdropout needs a dropout forward"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace credence
