// From data to calibrated predictions in a few lines: fit MAP on a noisy sine, predict with
// uncertainty on points inside and outside the training range.
#include <fmt/format.h>

#include "credence/credence.h"

int main(int, char** argv) {
  credence::use_fast_blas_kernels(argv);
  credence::tune_allocator();
  credence::flush_denormals();  // subnormal weights slow matrix products many times on some CPUs
  credence::FitRequest request;
  request.data = credence::load_data("synthetic:sine?n=200");
  request.model = "mlp:50,50?act=tanh";
  request.method = "map";
  request.train.epochs = 200;
  request.train.batch_size = 50;
  request.train.quiet = true;
  credence::FittedModel fitted = credence::fit(request);

  credence::Dataset test = credence::load_data("synthetic:sine?n=400&part=test").fit;
  credence::Predictive p = fitted.predict(test);
  auto m = credence::standard_metrics(p, test.y);
  fmt::print("test RMSE {:.3f}  NLL {:.3f}  90% coverage {:.2f}  learned noise std {:.3f}\n", m["rmse"],
             m["nll"], m["coverage_90"], fitted.likelihood.sigma * fitted.standardizer.y_std);
  return 0;
}
