#include "credence/posterior/dropout.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <algorithm>

#include "credence/core/error.h"
#include "credence/core/rng.h"

namespace credence {

DropoutPosterior::DropoutPosterior(torch::Tensor theta, double p, std::vector<ParamBlock> blocks)
    : theta_(theta.detach()), p_(p), blocks_(std::move(blocks)) {
  if (theta_.dim() != 1)
    throw InvalidArgument(fmt::format("dropout posterior: theta must be one vector [P], got {} dims", theta_.dim()));
  if (!(p_ >= 0.0 && p_ < 1.0)) throw InvalidArgument(fmt::format("dropout rate must be in [0, 1), got {}", p_));
  for (const auto& b : blocks_)
    if (b.shape.size() != 2 || b.offset + b.numel > theta_.size(0))
      throw InvalidArgument(fmt::format("dropout posterior: block '{}' is not a weight matrix inside theta", b.name));
}

torch::Tensor DropoutPosterior::sample(int64_t n, uint64_t seed) const {
  if (n < 1) throw InvalidArgument(fmt::format("number of samples must be >= 1, got {}", n));
  auto gen = cpu_generator(rng_key(seed, Stream::Sample));
  auto draws = theta_.unsqueeze(0).repeat({n, 1});
  for (const auto& b : blocks_) {
    // Drawn on the CPU in theta's dtype, so draws do not depend on the device.
    auto keep = at::empty({n, 1, b.shape[1]}, at::TensorOptions().dtype(theta_.scalar_type()))
                    .bernoulli_(1.0 - p_, gen)
                    .div_(1.0 - p_);
    draws.narrow(1, b.offset, b.numel).view({n, b.shape[0], b.shape[1]}).mul_(keep.to(theta_.device()));
  }
  return draws;
}

void DropoutPosterior::save(TensorMap& tensors, nlohmann::json& meta) const {
  tensors["posterior.theta"] = theta_;
  std::vector<std::string> names;
  for (const auto& b : blocks_) names.push_back(b.name);
  meta["dropout"] = {{"p", p_}, {"blocks", names}};
}

std::unique_ptr<DropoutPosterior> DropoutPosterior::load(const TensorMap& tensors, const nlohmann::json& meta,
                                                         const Model& model) {
  const auto& theta = posterior_tensor(tensors, "posterior.theta");
  const auto& saved = meta.at("dropout");
  std::vector<ParamBlock> blocks;
  for (const auto& name : saved.at("blocks").get<std::vector<std::string>>()) {
    const auto& all = model.layout().blocks;
    auto b = std::find_if(all.begin(), all.end(), [&](const ParamBlock& x) { return x.name == name; });
    if (b == all.end())
      throw IoError(fmt::format("dropout posterior names block '{}', which model '{}' lacks", name, model.spec()));
    blocks.push_back(*b);
  }
  return std::make_unique<DropoutPosterior>(theta.to(model.device()), saved.at("p").get<double>(),
                                            std::move(blocks));
}

}  // namespace credence
