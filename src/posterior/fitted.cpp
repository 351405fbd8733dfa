#include "credence/posterior/fitted.h"

#include "credence/model/network.h"

#include <fmt/format.h>

#include "credence/core/error.h"
#include "credence/eval/diagnostics.h"
#include "credence/model/frozen.h"
#include "credence/model/subspace.h"
#include "credence/model/adapters.h"

namespace credence {

void FittedModel::check_data(const Dataset& data) const {
  if (data.input_shape() != model->input_shape())
    throw DataError(fmt::format("data '{}' has inputs of shape [{}], but the model was fitted on [{}]",
                                data.name, fmt::join(data.input_shape(), ", "),
                                fmt::join(model->input_shape(), ", ")));
  if (data.task != likelihood.task())
    throw DataError(fmt::format("data '{}' is {}, but the model was fitted for {}", data.name,
                                to_string(data.task), to_string(likelihood.task())));
  // Fewer classes than the model is fine (a test subset may hold only some labels); more is not.
  if (data.task == Task::Classification && data.num_classes > num_classes)
    throw DataError(fmt::format("data '{}' has labels up to {}, but the model was fitted on {} classes (0..{})",
                                data.name, data.num_classes - 1, num_classes, num_classes - 1));
}

Predictive FittedModel::predict(const Dataset& data, const PredictOptions& options) const {
  check_data(data);
  auto x = standardizer.inputs(data.x.to(model->device(), model->dtype()));
  return posterior->predict(*model, likelihood, x, standardizer.y_mean, standardizer.y_std, options);
}

void FittedModel::save(const std::string& path, bool overwrite) const {
  TensorMap tensors;
  nlohmann::json meta = {
      {"format", "credence-posterior"},
      {"version", kFormatVersion},
      {"model", model->spec()},
      {"fingerprint", model->fingerprint()},
      {"input_shape", model->input_shape()},
      {"output_dim", model->output_dim()},
      {"dtype", model->dtype() == torch::kFloat64 ? "float64" : "float32"},
      {"likelihood", likelihood.name()},
      {"sigma", likelihood.sigma},
      {"num_classes", num_classes},
      {"method", method},
      {"posterior_kind", posterior->kind()},
      {"info", info}};
  const auto* subspace = model->find<Subspace>();
  const Model* full = subspace ? subspace->full_model().get() : model.get();
  if (subspace) {  // theta = origin + z basis: the file keeps both
    meta["subspace"] = subspace->description();
    tensors["model.subspace_origin"] = subspace->origin();
    tensors["model.subspace_basis"] = subspace->basis();
  }
  if (const auto* arch = full->find<Architecture>())  // rebuilds a network that no spec names
    meta["architecture"] = arch->architecture();
  if (const auto* frozen = full->find<FrozenParameters>()) {  // the fixed weights travel with the file
    meta["freeze"] = frozen->freeze_pattern();
    tensors["model.frozen_values"] = frozen->frozen_values();
  }
  standardizer.save(tensors, meta);
  posterior->save(tensors, meta);
  save_tensor_file(path, meta, tensors, overwrite);
}

FittedModel FittedModel::load(const std::string& path, torch::Device device, const Model* expected) {
  auto [meta, tensors] = load_tensor_file(path);
  if (meta.value("format", "") != "credence-posterior")
    throw IoError(fmt::format("'{}' is not a credence posterior file", path));
  if (!meta.contains("version") || !meta["version"].is_number_integer())
    throw IoError(fmt::format("'{}' has no format version (not a credence posterior file?)", path));
  int version = meta["version"].get<int>();
  if (version > kFormatVersion)
    throw IoError(fmt::format("'{}' has format version {}; this credence reads up to {} (upgrade credence)",
                              path, version, kFormatVersion));
  FittedModel f;
  std::string fingerprint;
  try {
    fingerprint = meta.at("fingerprint").get<std::string>();
    auto dtype = meta.at("dtype") == "float64" ? torch::kFloat64 : torch::kFloat32;
    f.model = meta.contains("architecture")
                  ? network_from_architecture(meta.at("model"), meta.at("architecture"), dtype, device)
                  : make_model(meta.at("model"), meta.at("input_shape").get<std::vector<int64_t>>(),
                               meta.at("output_dim").get<int64_t>(), dtype, device);
    if (meta.contains("freeze")) {
      if (!tensors.count("model.frozen_values"))
        throw IoError(fmt::format("'{}' names frozen parameters but lacks their values", path));
      f.model = freeze_parameters(f.model, meta.at("freeze").get<std::string>(), tensors.at("model.frozen_values"));
    }
    if (meta.contains("subspace")) {
      if (!tensors.count("model.subspace_origin") || !tensors.count("model.subspace_basis"))
        throw IoError(fmt::format("'{}' names a parameter subspace but lacks its origin or basis", path));
      f.model = restrict_to_subspace(f.model, tensors.at("model.subspace_origin"), tensors.at("model.subspace_basis"),
                                     meta.at("subspace").get<std::string>());
    }
    f.num_classes = meta.at("num_classes").get<int64_t>();
    Dataset shape_only;
    shape_only.task = meta.at("likelihood") == "categorical" || meta.at("likelihood") == "bernoulli"
                          ? Task::Classification
                          : Task::Regression;
    shape_only.num_classes = f.num_classes;
    f.likelihood = Likelihood::parse(meta.at("likelihood"), shape_only);
    f.likelihood.sigma = meta.at("sigma").get<double>();
    f.standardizer = Standardizer::load(tensors, meta);
    f.posterior = load_posterior(tensors, meta, *f.model);
    f.method = meta.at("method");
    f.info = meta.value("info", nlohmann::json::object());
  } catch (const nlohmann::json::exception& e) {
    throw IoError(fmt::format("'{}' is missing fields ({})", path, e.what()));
  }
  if (f.model->fingerprint() != fingerprint)
    throw IoError(fmt::format("'{}' does not match model '{}' as built here (file changed?)", path,
                              f.model->spec()));
  if (expected && expected->fingerprint() != f.model->fingerprint())
    throw InvalidArgument(fmt::format("'{}' was saved for model '{}' (inputs [{}], {} outputs), not for '{}' "
                                      "(inputs [{}], {} outputs)",
                                      path, f.model->spec(), fmt::join(f.model->input_shape(), ", "),
                                      f.model->output_dim(), expected->spec(),
                                      fmt::join(expected->input_shape(), ", "), expected->output_dim()));
  f.standardizer.x_mean = f.standardizer.x_mean.defined() ? f.standardizer.x_mean.to(device) : f.standardizer.x_mean;
  f.standardizer.x_std = f.standardizer.x_std.defined() ? f.standardizer.x_std.to(device) : f.standardizer.x_std;
  return f;
}

std::map<std::string, double> convergence_metrics(const FittedModel& fitted, const Predictive& predictive,
                                                  std::vector<std::string>* warnings) {
  auto* particles = dynamic_cast<const ParticlePosterior*>(fitted.posterior.get());
  if (!particles || particles->chains() < 2) return {};
  auto d = prediction_diagnostics(predictive, particles->chains());
  if (warnings)
    for (const auto& w : d.warnings()) warnings->push_back(w);
  return {{"rhat", d.rhat_p90}, {"rhat_max", d.rhat_max}, {"ess", d.ess_bulk_min}, {"ess_tail", d.ess_tail_min}};
}

torch::Tensor FittedModel::point() const {
  TensorMap tensors;  // the posterior's tensors as its file would hold them
  nlohmann::json meta;
  posterior->save(tensors, meta);
  for (const char* key : {"laplace.theta", "posterior.theta", "posterior.mean"})
    if (tensors.count(key) && tensors.at(key).dim() == 1 && tensors.at(key).size(0) == model->layout().size)
      return tensors.at(key);
  if (tensors.count("posterior.particles")) {
    const auto& particles = tensors.at("posterior.particles");
    if (particles.size(0) == 1) return particles[0];
    throw InvalidArgument(fmt::format("the {} posterior holds {} weight vectors; use a fit with one (map, laplace, "
                                      "vi, ...)",
                                      method, particles.size(0)));
  }
  throw InvalidArgument(fmt::format("the {} posterior holds no single vector of all {} weights; use a map fit", method,
                                    model->layout().size));
}

std::vector<std::pair<std::string, torch::Tensor>> FittedModel::full_weights(const torch::Tensor& theta) const {
  const Model* m = model.get();
  torch::Tensor full = theta.detach();
  if (const auto* sub = m->find<Subspace>()) {
    full = sub->origin() + full.to(sub->basis().scalar_type()).matmul(sub->basis());
    m = sub->full_model().get();
  }
  if (const auto* frozen = m->find<FrozenParameters>()) {
    full = frozen->full_theta(full);
    m = &frozen->unfrozen_model();
  }
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& b : m->layout().blocks) out.emplace_back(b.name, b.to_torch(full.narrow(0, b.offset, b.numel)));
  const auto* arch = m->find<Architecture>();
  return arch ? merge_adapters(arch->architecture(), std::move(out)) : out;  // adapters fold into their layers
}

}  // namespace credence
