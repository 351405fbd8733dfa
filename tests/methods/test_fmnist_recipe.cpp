// The default recipe on real data: MAP mlp:256,256 on 10,000 Fashion-MNIST images must reach
// >= 84% test accuracy (the foundation's acceptance bar).
#include <gtest/gtest.h>

#include <fstream>

#include "credence/credence.h"

TEST(FmnistRecipe, MapReaches84PercentTestAccuracy) {
  if (!std::ifstream(credence::fmnist_dir() + "/t10k-labels-idx1-ubyte.gz").good())
    GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  credence::set_threads(1);
  credence::FitRequest request;
  request.data = credence::load_data("fmnist:train?n=10000");
  request.model = "mlp:256,256";
  request.train.quiet = true;
  auto fitted = credence::fit(request);
  auto test = credence::load_data("fmnist:test").fit;
  auto metrics = credence::standard_metrics(fitted.predict(test), test.y);
  EXPECT_GE(metrics["accuracy"], 0.84);
  EXPECT_LT(metrics["nll"], 0.5);
  EXPECT_LT(metrics["ece"], 0.05);
}
