// FittedModel save/load: round trips, overwrite protection, model and data checks.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "credence/core/error.h"
#include "credence/fit/fit.h"

namespace credence {
namespace {

class FittedIo : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "credence_methods_XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  std::string path(const std::string& name) const { return (std::filesystem::path(dir_) / name).string(); }
  std::string dir_;
};

FittedModel fit_sine(torch::Dtype dtype = torch::kFloat32) {
  FitRequest req;
  req.data = load_data("synthetic:sine?n=64", {dtype});
  req.model = "mlp:8";
  req.dtype = dtype;
  req.train.epochs = 2;
  req.train.batch_size = 16;
  req.train.quiet = true;
  return fit(req);
}

TEST_F(FittedIo, RoundTripGivesIdenticalPredictions) {
  auto f = fit_sine(torch::kFloat64);
  auto file = path("sine.crd");
  f.save(file);
  ASSERT_TRUE(std::filesystem::exists(file));
  EXPECT_FALSE(std::filesystem::exists(file + ".tmp"));
  auto g = FittedModel::load(file);
  EXPECT_EQ(g.model->spec(), "mlp:8");
  EXPECT_EQ(g.model->fingerprint(), f.model->fingerprint());
  EXPECT_EQ(g.model->dtype(), torch::kFloat64);
  EXPECT_EQ(g.method, "map");
  EXPECT_EQ(g.likelihood.name(), f.likelihood.name());
  EXPECT_DOUBLE_EQ(g.likelihood.sigma, f.likelihood.sigma);
  EXPECT_NE(f.likelihood.sigma, 1.0);  // learned, so the saved value matters
  EXPECT_DOUBLE_EQ(g.standardizer.y_mean, f.standardizer.y_mean);
  EXPECT_DOUBLE_EQ(g.standardizer.y_std, f.standardizer.y_std);
  EXPECT_EQ(g.info["epochs"], 2);
  auto* pf = dynamic_cast<const ParticlePosterior*>(f.posterior.get());
  auto* pg = dynamic_cast<const ParticlePosterior*>(g.posterior.get());
  ASSERT_TRUE(pf && pg);
  EXPECT_TRUE(at::equal(pf->particles(), pg->particles()));

  auto test = load_data("synthetic:sine?part=test&n=50", {torch::kFloat64}).fit;
  auto a = f.predict(test), b = g.predict(test);
  EXPECT_TRUE(at::equal(a.mean, b.mean));
  EXPECT_TRUE(at::equal(a.var, b.var));
  // A MAP predictive's variance is the noise variance in original units.
  double noise_var = std::pow(f.likelihood.sigma * f.standardizer.y_std, 2);
  EXPECT_NEAR(a.var[0].item<double>(), noise_var, 1e-12);
}

TEST_F(FittedIo, ClassificationRoundTrip) {
  FitRequest req;
  req.data = load_data("synthetic:moons?n=64");
  req.model = "mlp:8";
  req.train.epochs = 2;
  req.train.quiet = true;
  auto f = fit(req);
  f.save(path("moons.crd"));
  auto g = FittedModel::load(path("moons.crd"));
  EXPECT_EQ(g.num_classes, 2);
  EXPECT_EQ(g.likelihood.kind, LikelihoodKind::Categorical);
  auto test = load_data("synthetic:moons?part=test&n=30").fit;
  EXPECT_TRUE(at::equal(f.predict(test).probs, g.predict(test).probs));
  // Regression data for a classifier is refused.
  EXPECT_THROW(g.predict(load_data("synthetic:linear?d=2&n=10").fit), DataError);
}

TEST_F(FittedIo, SaveRefusesToOverwriteUnlessAsked) {
  auto f = fit_sine();
  auto file = path("p.crd");
  f.save(file);
  auto size = std::filesystem::file_size(file);
  try {
    f.save(file);
    FAIL() << "second save did not throw";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("exists"), std::string::npos) << e.what();
  }
  EXPECT_EQ(std::filesystem::file_size(file), size);
  // A different fit replaces it when overwrite is set.
  FitRequest req;
  req.data = load_data("synthetic:sine?n=64");
  req.model = "mlp:3";
  req.train.epochs = 1;
  req.train.quiet = true;
  auto other = fit(req);
  EXPECT_NO_THROW(other.save(file, /*overwrite=*/true));
  EXPECT_EQ(FittedModel::load(file).model->spec(), "mlp:3");
}

TEST_F(FittedIo, LoadChecksExpectedModel) {
  auto f = fit_sine();
  auto file = path("p.crd");
  f.save(file);
  auto same = make_model("mlp:8", {1}, 1);
  EXPECT_NO_THROW(FittedModel::load(file, torch::kCPU, same.get()));
  auto wider = make_model("mlp:16", {1}, 1);
  try {
    FittedModel::load(file, torch::kCPU, wider.get());
    FAIL() << "load accepted another architecture";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("mlp:16"), std::string::npos) << e.what();
  }
  auto other_input = make_model("mlp:8", {2}, 1);
  EXPECT_THROW(FittedModel::load(file, torch::kCPU, other_input.get()), InvalidArgument);
}

TEST_F(FittedIo, LoadRejectsOtherFiles) {
  auto text = path("notes.txt");
  std::ofstream(text) << "hello, this is not a posterior\n";
  EXPECT_THROW(FittedModel::load(text), IoError);
  EXPECT_THROW(FittedModel::load(path("missing.crd")), IoError);
  // A credence tensor file that is not a posterior.
  auto tensors = path("tensors.crd");
  save_tensor_file(tensors, {{"format", "something-else"}}, {{"a", at::ones({2})}}, false);
  EXPECT_THROW(FittedModel::load(tensors), IoError);
  // A posterior header that lacks its fields.
  auto bare = path("bare.crd");
  save_tensor_file(bare, {{"format", "credence-posterior"}}, {}, false);
  EXPECT_THROW(FittedModel::load(bare), IoError);
  auto no_fingerprint = path("nofp.crd");
  save_tensor_file(no_fingerprint,
                   {{"format", "credence-posterior"}, {"version", 1}, {"model", "mlp:2"}, {"input_shape", {1}},
                    {"output_dim", 1}, {"dtype", "float32"}, {"likelihood", "gaussian"}, {"sigma", 1.0},
                    {"num_classes", 0}, {"method", "map"}, {"posterior_kind", "particles"}, {"y_mean", 0.0},
                    {"y_std", 1.0}},
                   {{"posterior.particles", at::zeros({1, 7})}}, false);
  EXPECT_THROW(FittedModel::load(no_fingerprint), IoError);
  // A newer format version is refused.
  auto newer = path("newer.crd");
  save_tensor_file(newer, {{"format", "credence-posterior"}, {"version", FittedModel::kFormatVersion + 1}}, {},
                   false);
  EXPECT_THROW(FittedModel::load(newer), IoError);
  // A truncated posterior.
  auto f = fit_sine();
  auto good = path("good.crd");
  f.save(good);
  auto bytes = std::filesystem::file_size(good);
  std::filesystem::copy_file(good, path("cut.crd"));
  std::filesystem::resize_file(path("cut.crd"), bytes - 8);
  EXPECT_THROW(FittedModel::load(path("cut.crd")), IoError);
}

TEST_F(FittedIo, PredictChecksInputShape) {
  auto f = fit_sine();
  auto wrong = load_data("synthetic:linear?n=10").fit;  // inputs [3], model fitted on [1]
  try {
    f.predict(wrong);
    FAIL() << "predict accepted inputs of another shape";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("[3]"), std::string::npos) << e.what();
  }
  EXPECT_THROW(f.predict(load_data("synthetic:moons?n=10").fit), DataError);
  EXPECT_NO_THROW(f.predict(load_data("synthetic:sine?n=10&part=test").fit));
}

}  // namespace
}  // namespace credence
