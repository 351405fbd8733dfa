#include "credence/model/weights.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <map>

#include "credence/core/error.h"
#include "credence/core/files.h"
#include "credence/core/rng.h"

namespace credence {
namespace {

std::string shape_of(const torch::Tensor& t) { return fmt::format("[{}]", fmt::join(t.sizes(), ", ")); }
std::string shape_of(const std::vector<int64_t>& s) { return fmt::format("[{}]", fmt::join(s, ", ")); }

class InitializedModel : public Model {
 public:
  InitializedModel(std::shared_ptr<Model> inner, torch::Tensor theta, std::vector<int> seeded,
                   torch::Tensor spread = {}, uint64_t anchor_seed = 0)
      : inner_(std::move(inner)), theta_(std::move(theta)), seeded_(std::move(seeded)), spread_(std::move(spread)),
        anchor_seed_(anchor_seed) {}
  const std::string& spec() const override { return inner_->spec(); }
  const ParamLayout& layout() const override { return inner_->layout(); }
  const std::vector<int64_t>& input_shape() const override { return inner_->input_shape(); }
  int64_t output_dim() const override { return inner_->output_dim(); }
  torch::Tensor init_params(uint64_t seed) const override {
    auto theta = theta_.clone();
    if (spread_.defined() && seed != anchor_seed_)
      theta.add_(spread_ * keyed_randn({theta.size(0)}, rng_key(seed, Stream::Init, 7), theta.options()));
    if (seeded_.empty()) return theta;
    auto drawn = inner_->init_params(seed);
    for (int b : seeded_) {
      const auto& block = inner_->layout().blocks[b];
      theta.narrow(0, block.offset, block.numel).copy_(drawn.narrow(0, block.offset, block.numel));
    }
    return theta;
  }
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& theta, ForwardTrace* trace) const override {
    return inner_->forward(x, theta, trace);
  }
  torch::Dtype dtype() const override { return inner_->dtype(); }
  torch::Device device() const override { return inner_->device(); }
  const Capability* find_capability(const std::type_info& type) const override {
    return inner_->find_capability(type);
  }

 private:
  std::shared_ptr<Model> inner_;
  torch::Tensor theta_;
  std::vector<int> seeded_;
  torch::Tensor spread_;  ///< per-parameter std of draws around theta_ for seeds other than the anchor
  uint64_t anchor_seed_;
};

}  // namespace

NamedWeights named_weights(const Model& model, const torch::Tensor& theta) {
  NamedWeights out;
  for (const auto& b : model.layout().blocks) out.emplace_back(b.name, b.to_torch(theta.narrow(0, b.offset, b.numel)));
  return out;
}

torch::Tensor weights_to_theta(const Model& model, const NamedWeights& weights, const std::string& source) {
  const auto& blocks = model.layout().blocks;
  std::map<std::string, torch::Tensor> by_name(weights.begin(), weights.end());
  std::vector<std::string> missing, wrong_shape, unexpected;
  bool any_name = false;
  for (const auto& b : blocks) {
    auto it = by_name.find(b.name);
    if (it == by_name.end()) {
      missing.push_back(b.name);
      continue;
    }
    any_name = true;
    if (it->second.sizes().vec() != b.torch_shape())
      wrong_shape.push_back(fmt::format("{} is {} in the file, {} in the model", b.name, shape_of(it->second),
                                        shape_of(b.torch_shape())));
  }
  for (const auto& [name, t] : weights) {
    bool known = false;
    for (const auto& b : blocks) known = known || b.name == name;
    if (!known) unexpected.push_back(name);
  }
  std::vector<torch::Tensor> parts;
  auto opts = torch::TensorOptions().dtype(model.dtype()).device(model.device());
  if (missing.empty() && wrong_shape.empty() && unexpected.empty()) {
    for (const auto& b : blocks) parts.push_back(b.from_torch(by_name.at(b.name).detach().to(opts)));
    return at::cat(parts);
  }
  // No name in common: the same tensors in the same order under other names (PyTorch's own naming).
  bool positional = !any_name && weights.size() == blocks.size();
  for (size_t i = 0; positional && i < blocks.size(); ++i)
    positional = weights[i].second.sizes().vec() == blocks[i].torch_shape();
  if (positional) {
    std::vector<std::string> pairs;
    for (size_t i = 0; i < blocks.size(); ++i) {
      pairs.push_back(weights[i].first + " -> " + blocks[i].name);
      parts.push_back(blocks[i].from_torch(weights[i].second.detach().to(opts)));
    }
    fmt::print(stderr, "note: '{}' has none of model '{}''s parameter names; loading by position: {}\n", source,
               model.spec(), fmt::join(pairs, ", "));
    return at::cat(parts);
  }
  std::vector<std::string> problems;
  if (!missing.empty()) problems.push_back(fmt::format("missing: {}", fmt::join(missing, ", ")));
  if (!unexpected.empty()) problems.push_back(fmt::format("unexpected: {}", fmt::join(unexpected, ", ")));
  if (!wrong_shape.empty()) problems.push_back(fmt::format("wrong shape: {}", fmt::join(wrong_shape, "; ")));
  throw InvalidArgument(fmt::format(
      "the weights in '{}' do not fit model '{}' ({}); the model's parameters are {} (`credence describe --models` "
      "shows the families; name the file's tensors so, or save the same tensors in the same order)",
      source, model.spec(), fmt::join(problems, "; "), [&] {
        std::vector<std::string> names;
        for (const auto& b : blocks) names.push_back(b.name + shape_of(b.torch_shape()));
        return fmt::format("{}", fmt::join(names, ", "));
      }()));
}

std::shared_ptr<Model> with_initial_weights(std::shared_ptr<Model> inner, torch::Tensor theta,
                                           std::vector<int> seeded_blocks) {
  if (theta.dim() != 1 || theta.size(0) != inner->layout().size)
    throw InvalidArgument(fmt::format("initial weights for model '{}' must be [{}], got {}", inner->spec(),
                                      inner->layout().size, shape_of(theta)));
  auto on_device = theta.to(torch::TensorOptions().dtype(inner->dtype()).device(inner->device()));
  for (int b : seeded_blocks)
    if (b < 0 || b >= static_cast<int>(inner->layout().blocks.size()))
      throw InvalidArgument(fmt::format("model '{}' has no parameter block {}", inner->spec(), b));
  return std::make_shared<InitializedModel>(std::move(inner), std::move(on_device), std::move(seeded_blocks));
}

std::shared_ptr<Model> with_prior_start(std::shared_ptr<Model> inner, const torch::Tensor& mean,
                                        const torch::Tensor& sd, uint64_t anchor_seed) {
  const int64_t P = inner->layout().size;
  if (mean.numel() != P || sd.numel() != P)
    throw InvalidArgument(fmt::format("prior start for model '{}': mean and sd must be [{}], got {} and {}",
                                      inner->spec(), P, shape_of(mean), shape_of(sd)));
  auto opts = torch::TensorOptions().dtype(inner->dtype()).device(inner->device());
  return std::make_shared<InitializedModel>(std::move(inner), mean.reshape({P}).to(opts), std::vector<int>{},
                                            sd.reshape({P}).to(opts), anchor_seed);
}

}  // namespace credence
