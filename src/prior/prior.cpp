#include "credence/prior/prior.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <fmt/format.h>

#include <filesystem>

#include "credence/core/error.h"
#include "credence/core/spec.h"
#include "credence/core/tensor_io.h"

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
  if (is_prior_file_spec(text))
    throw InvalidArgument(fmt::format("prior '{}' is a learned prior's file: read it with load_prior_file", text));
  std::string body = text;
  if (body.rfind("gaussian:", 0) == 0) body = body.substr(9);
  else if (body.find(':') != std::string::npos)
    throw InvalidArgument(fmt::format(
        "prior '{}': unknown kind '{}' (known: gaussian:PRECISION, gaussian:P1,P2,... one per layer, "
        "file:PATH for a prior written by credence meta-fit, gp:KERNEL?... for a prior over functions)",
        text, body.substr(0, body.find(':'))));
  std::vector<double> values;
  for (const auto& piece : split(body, ',')) values.push_back(parse_double(piece, "prior precision"));
  if (values.size() == 1) return isotropic(values[0], model);
  return per_layer(values, model);
}

torch::Tensor GaussianPrior::centered(const torch::Tensor& theta) const {
  return has_mean() ? theta - mean : theta;
}

torch::Tensor GaussianPrior::neg_log_prob(const torch::Tensor& theta) const {
  auto d = centered(theta);
  return 0.5 * (precision * d * d).sum(-1);
}

double GaussianPrior::add_grad(const torch::Tensor& theta, torch::Tensor& grad, double scale) const {
  at::NoGradGuard no_grad;
  if (!has_mean() && layer_precisions.size() == 1) {  // isotropic: plain weight decay, no temporary
    const double decay = layer_precisions[0] * scale;
    grad.add_(theta, decay);
    return 0.5 * decay * (theta.dim() == 1 ? at::dot(theta, theta) : theta.pow(2).sum()).item<double>();
  }
  auto d = centered(theta);
  auto g = precision * d;
  grad.add_(g, scale);
  return 0.5 * scale * (d * g).sum().item<double>();
}

std::string GaussianPrior::describe() const {
  if (!source.empty()) return "file:" + source;
  return fmt::format("{}", fmt::join(layer_precisions, ","));
}

bool is_prior_file_spec(const std::string& spec, std::string* path) {
  std::string p;
  if (spec.rfind("file:", 0) == 0) p = spec.substr(5);
  else if (spec.find(':') == std::string::npos && spec.find_first_not_of("0123456789.,eE+-") != std::string::npos &&
           spec != "auto")
    p = spec;  // not a number list: a path
  else
    return false;
  if (path) *path = p;
  return true;
}

namespace {
constexpr const char* kPriorFormat = "credence-prior";
}

void save_prior_file(const std::string& path, const PriorFile& file, bool overwrite) {
  const auto& p = file.prior;
  if (!p.precision.defined()) throw InvalidArgument("save_prior_file: the prior has no precision");
  nlohmann::json meta = {{"format", kPriorFormat}, {"version", 1},        {"model", file.model},
                         {"info", file.info},     {"units", file.has_units}, {"size", p.precision.size(0)}};
  TensorMap tensors = {{"prior.precision", p.precision.detach().to(at::kDouble).cpu()}};
  if (p.has_mean()) tensors["prior.mean"] = p.mean.detach().to(at::kDouble).cpu();
  if (file.has_units) file.standardizer.save(tensors, meta);
  save_tensor_file(path, meta, tensors, overwrite);
}

PriorFile load_prior_file(const std::string& path) {
  if (!std::filesystem::exists(path))
    throw InvalidArgument(fmt::format("prior file '{}' does not exist (write one with credence meta-fit, or give "
                                      "a precision such as --prior gaussian:1)",
                                      path));
  auto [meta, tensors] = load_tensor_file(path);
  if (meta.value("format", "") != kPriorFormat)
    throw InvalidArgument(fmt::format("'{}' is not a prior file (credence meta-fit writes them)", path));
  PriorFile f;
  f.model = meta.value("model", "");
  f.info = meta.value("info", nlohmann::json::object());
  f.prior.precision = tensors.at("prior.precision").to(at::kDouble);
  if (tensors.count("prior.mean")) f.prior.mean = tensors.at("prior.mean").to(at::kDouble);
  const auto& p = f.prior;
  if (p.precision.dim() != 1 || (p.has_mean() && !p.mean.sizes().equals(p.precision.sizes())) ||
      !at::isfinite(p.precision).all().item<bool>() || at::any(p.precision <= 0).item<bool>() ||
      (p.has_mean() && !at::isfinite(p.mean).all().item<bool>()))
    throw InvalidArgument(fmt::format("prior file '{}' is damaged: non-finite values, precisions <= 0 or shapes "
                                      "that disagree",
                                      path));
  f.prior.source = path;
  // A zero-mean prior with one precision is the isotropic prior, and takes its exact arithmetic.
  if (!p.has_mean() && p.precision.numel() > 0 && at::equal(p.precision, p.precision[0].expand_as(p.precision)))
    f.prior.layer_precisions = {p.precision[0].item<double>()};
  f.has_units = meta.value("units", false);
  if (f.has_units) f.standardizer = Standardizer::load(tensors, meta);
  return f;
}

GaussianPrior PriorFile::for_model(const Model& model) const {
  const int64_t size = prior.precision.size(0);
  if (size != model.layout().size)
    throw InvalidArgument(fmt::format("prior file '{}' holds {} parameters (model '{}'); this fit's model '{}' has {}: "
                                      "use the model the prior was learned for",
                                      prior.source, size, this->model, model.spec(), model.layout().size));
  auto opts = at::TensorOptions().dtype(model.dtype()).device(model.device());
  GaussianPrior p = prior;
  p.precision = prior.precision.to(opts);
  if (prior.has_mean()) p.mean = prior.mean.to(opts);
  return p;
}

}  // namespace credence
