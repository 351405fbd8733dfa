#include "credence/data/standardizer.h"

#include <ATen/ATen.h>

namespace credence {

Standardizer Standardizer::fit(const Dataset& data) {
  Standardizer s;
  if (data.standardize_inputs) {
    s.x_mean = data.x.mean(0);
    // Constant columns keep scale 1 rather than dividing by zero.
    auto sd = data.x.std(0, /*unbiased=*/false);
    s.x_std = at::where(sd > 1e-12, sd, at::ones_like(sd));
  }
  if (data.task == Task::Regression) {
    s.y_mean = data.y.mean().item<double>();
    double sd = data.size() > 1 ? data.y.std(/*unbiased=*/false).item<double>() : 1.0;
    s.y_std = sd > 1e-12 ? sd : 1.0;
  }
  return s;
}

torch::Tensor Standardizer::inputs(const torch::Tensor& x) const {
  if (!x_mean.defined()) return x;
  return (x - x_mean.to(x.device(), x.scalar_type())) / x_std.to(x.device(), x.scalar_type());
}

torch::Tensor Standardizer::targets(const torch::Tensor& y) const { return (y - y_mean) / y_std; }

Dataset Standardizer::apply(const Dataset& data) const {
  Dataset out = data;
  out.x = inputs(data.x);
  if (data.task == Task::Regression) out.y = targets(data.y);
  return out;
}

void Standardizer::save(TensorMap& tensors, nlohmann::json& meta) const {
  if (x_mean.defined()) {
    tensors["standardizer.x_mean"] = x_mean;
    tensors["standardizer.x_std"] = x_std;
  }
  meta["y_mean"] = y_mean;
  meta["y_std"] = y_std;
}

Standardizer Standardizer::load(const TensorMap& tensors, const nlohmann::json& meta) {
  Standardizer s;
  auto it = tensors.find("standardizer.x_mean");
  if (it != tensors.end()) {
    s.x_mean = it->second;
    s.x_std = tensors.at("standardizer.x_std");
  }
  s.y_mean = meta.at("y_mean").get<double>();
  s.y_std = meta.at("y_std").get<double>();
  return s;
}

}  // namespace credence
