// The functional Laplace (hessian=gp): the linearized network as a GP with its tangent kernel. On
// every training row it is the weight-space full Laplace's GLM predictive (Woodbury).
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <filesystem>

#include "credence/credence.h"
#include "credence/posterior/functional_laplace.h"

namespace credence {

namespace {
FittedModel fit_with(const std::string& data, const std::string& method, const std::string& model) {
  FitRequest r;
  r.data = load_data(data, {torch::kFloat64});
  r.model = model;
  r.method = method;
  r.dtype = torch::kFloat64;
  r.train.epochs = 30;
  r.train.batch_size = 16;
  r.train.quiet = true;
  return fit(r);
}
}  // namespace

TEST(FunctionalLaplace, OnEveryTrainingRowItIsTheWeightSpaceGlmPredictive) {
  struct Case {
    std::string data, test, model, link;
  };
  for (const auto& c : {Case{"synthetic:sine?n=40", "synthetic:sine?n=30&part=test", "mlp:8", "probit"},
                        Case{"synthetic:moons?n=40", "synthetic:moons?n=30&part=test", "mlp:6,6", "probit"},
                        Case{"synthetic:moons?n=40", "synthetic:moons?n=30&part=test", "mlp:6", "mc"}}) {
    for (const std::string subset : {"all", "last_layer"}) {
      const std::string common = ",subset=" + subset + ",prior=fixed,link=" + c.link;
      auto weight = fit_with(c.data, "laplace:hessian=full" + common, c.model);
      auto function = fit_with(c.data, "laplace:hessian=gp" + common, c.model);
      auto test = load_data(c.test, {torch::kFloat64}).fit;
      auto a = weight.predict(test), b = function.predict(test);
      const auto& fl = dynamic_cast<const FunctionalLaplacePosterior&>(*function.posterior);
      EXPECT_EQ(fl.inducing_points(), 40);
      if (test.task == Task::Regression) {
        EXPECT_TRUE(at::allclose(a.mean, b.mean, 1e-9, 1e-10)) << c.data << subset;
        EXPECT_TRUE(at::allclose(a.var, b.var, 1e-7, 1e-9)) << c.data << subset << (a.var - b.var).abs().max();
      } else {
        EXPECT_TRUE(at::allclose(a.probs, b.probs, 1e-7, 1e-9)) << c.data << subset << c.link
                                                              << (a.probs - b.probs).abs().max();
      }
    }
  }
}

TEST(FunctionalLaplace, FewerInducingRowsSavesAndLoads) {
  auto fitted = fit_with("synthetic:sine?n=60", "laplace:hessian=gp,points=15,subset=all", "mlp:8");
  EXPECT_EQ(fitted.info.at("report").at("inducing_points").get<int64_t>(), 15);
  auto test = load_data("synthetic:sine?n=30&part=test", {torch::kFloat64}).fit;
  auto p = fitted.predict(test);
  EXPECT_TRUE(at::isfinite(p.var).all().item<bool>());
  EXPECT_TRUE((p.var > 0).all().item<bool>());
  auto path = (std::filesystem::temp_directory_path() / ("credence_flaplace_" + std::to_string(::getpid()))).string();
  std::filesystem::remove(path);
  fitted.save(path, false);
  auto loaded = FittedModel::load(path);
  std::filesystem::remove(path);
  auto q = loaded.predict(test);
  EXPECT_TRUE(at::allclose(p.mean, q.mean, 1e-12, 1e-12));
  EXPECT_TRUE(at::allclose(p.var, q.var, 1e-10, 1e-12));
  EXPECT_THROW(loaded.posterior->sample(2, 0), NotSupported);
  EXPECT_THROW(fit_with("synthetic:sine?n=20", "laplace:hessian=gp,prior=marglik", "mlp:4"), InvalidArgument);
  EXPECT_THROW(fit_with("synthetic:sine?n=20", "laplace:hessian=gp,predictive=nn", "mlp:4"), InvalidArgument);
  EXPECT_THROW(fit_with("synthetic:sine?n=20", "laplace:hessian=gp,points=-1", "mlp:4"), InvalidArgument);
}

}  // namespace credence
