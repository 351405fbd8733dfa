#include "credence/prior/prior.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <fmt/format.h>

#include "credence/core/error.h"
#include "credence/core/spec.h"

namespace credence {

GaussianPrior GaussianPrior::isotropic(double precision, const Model& model) {
  if (!(precision > 0))
    throw InvalidArgument(fmt::format("prior precision must be > 0, got {}", precision));
  GaussianPrior p;
  p.layer_precisions = {precision};
  p.precision = at::full({model.layout().size}, precision,
                         at::TensorOptions().dtype(model.dtype()).device(model.device()));
  return p;
}

GaussianPrior GaussianPrior::per_layer(const std::vector<double>& precisions, const Model& model) {
  const auto& layout = model.layout();
  if (static_cast<int>(precisions.size()) != layout.num_layers)
    throw InvalidArgument(fmt::format("prior: {} precisions given for a model with {} layers (give 1 or {})",
                                      precisions.size(), layout.num_layers, layout.num_layers));
  auto prec = at::empty({layout.size}, at::TensorOptions().dtype(model.dtype()));
  for (const auto& b : layout.blocks) {
    double v = precisions[b.layer];
    if (!(v > 0)) throw InvalidArgument(fmt::format("prior precision must be > 0, got {}", v));
    prec.narrow(0, b.offset, b.numel).fill_(v);
  }
  GaussianPrior p;
  p.layer_precisions = precisions;
  p.precision = prec.to(model.device());
  return p;
}

GaussianPrior GaussianPrior::parse(const std::string& text, const Model& model) {
  std::vector<double> values;
  for (const auto& piece : split(text, ',')) values.push_back(parse_double(piece, "prior precision"));
  if (values.size() == 1) return isotropic(values[0], model);
  return per_layer(values, model);
}

torch::Tensor GaussianPrior::neg_log_prob(const torch::Tensor& theta) const {
  return 0.5 * (precision * theta * theta).sum(-1);
}

double GaussianPrior::add_grad(const torch::Tensor& theta, torch::Tensor& grad, double scale) const {
  at::NoGradGuard no_grad;
  if (layer_precisions.size() == 1) {  // isotropic: plain weight decay, no temporary
    const double decay = layer_precisions[0] * scale;
    grad.add_(theta, decay);
    return 0.5 * decay * (theta.dim() == 1 ? at::dot(theta, theta) : theta.pow(2).sum()).item<double>();
  }
  auto g = precision * theta;
  grad.add_(g, scale);
  return 0.5 * scale * (theta * g).sum().item<double>();
}

std::string GaussianPrior::describe() const { return fmt::format("{}", fmt::join(layer_precisions, ",")); }

}  // namespace credence
