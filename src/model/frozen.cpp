#include "credence/model/frozen.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <map>

#include "credence/core/error.h"
#include "credence/core/spec.h"

namespace credence {
namespace {

// Trainable tensors are gathered from / scattered into the unfrozen model's theta; each capability
// of the inner model is offered in the trainable coordinates when it still makes sense there.
class FrozenModel : public Model,
                    public FrozenParameters,
                    public LastLayerAccess,
                    public DropoutForward,
                    public GaussianForward,
                    public HandBackward {
 public:
  FrozenModel(std::shared_ptr<Model> inner, std::string pattern, torch::Tensor values, std::vector<bool> frozen)
      : inner_(std::move(inner)), pattern_(std::move(pattern)), values_(std::move(values)) {
    const auto& blocks = inner_->layout().blocks;
    std::vector<torch::Tensor> index;
    for (size_t i = 0; i < blocks.size(); ++i) {
      if (frozen[i]) continue;
      ParamBlock b = blocks[i];
      b.offset = layout_.size;
      layout_.size += b.numel;
      block_of_[static_cast<int64_t>(i)] = static_cast<int64_t>(layout_.blocks.size());
      layout_.blocks.push_back(b);
      index.push_back(at::arange(blocks[i].offset, blocks[i].offset + blocks[i].numel, at::kLong));
    }
    layout_.num_layers = inner_->layout().num_layers;
    layout_.kinds = inner_->layout().kinds;
    index_ = at::cat(index).to(inner_->device());
    if (auto* ll = inner_->find<LastLayerAccess>()) {
      auto last = ll->last_layer();
      if (block_of_.count(last.weight_block) && block_of_.count(last.bias_block)) {
        last_ = last;
        last_.weight_block = block_of_.at(last.weight_block);
        last_.bias_block = block_of_.at(last.bias_block);
        has_last_ = true;
      }
    }
    if (auto* d = inner_->find<DropoutForward>()) {
      dropout_ok_ = true;
      for (const auto& name : d->dropout_blocks()) {
        bool trainable = false;
        for (const auto& b : layout_.blocks) trainable = trainable || b.name == name;
        dropout_ok_ = dropout_ok_ && trainable;
      }
    }
  }

  const std::string& spec() const override { return inner_->spec(); }
  const ParamLayout& layout() const override { return layout_; }
  const std::vector<int64_t>& input_shape() const override { return inner_->input_shape(); }
  int64_t output_dim() const override { return inner_->output_dim(); }
  torch::Dtype dtype() const override { return inner_->dtype(); }
  torch::Device device() const override { return inner_->device(); }
  torch::Tensor init_params(uint64_t seed) const override { return inner_->init_params(seed).index_select(0, index_); }
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& theta, ForwardTrace* trace) const override {
    const auto* blocks = inner_->find<BlockForward>();
    if (!blocks) return inner_->forward(x, full_theta(theta), trace);
    check_size(theta);
    // Frozen blocks go in as constants (one row shared by every stacked set): no gradient is
    // computed for them, and the inner model may run them once for all sets.
    const auto& inner_blocks = inner_->layout().blocks;
    auto base = values_.to(theta.device(), theta.scalar_type());
    std::vector<torch::Tensor> parts(inner_blocks.size());
    for (size_t i = 0; i < inner_blocks.size(); ++i) {
      auto it = block_of_.find(static_cast<int64_t>(i));
      if (it != block_of_.end()) {
        const auto& b = layout_.blocks[it->second];
        parts[i] = theta.narrow(-1, b.offset, b.numel);
      } else {
        auto value = base.narrow(0, inner_blocks[i].offset, inner_blocks[i].numel);
        parts[i] = theta.dim() == 1 ? value : value.unsqueeze(0).expand({theta.size(0), value.size(0)});
      }
    }
    return blocks->forward_blocks(x, parts, trace);
  }

  const std::string& freeze_pattern() const override { return pattern_; }
  const Model& unfrozen_model() const override { return *inner_; }
  const torch::Tensor& frozen_values() const override { return values_; }
  void check_size(const torch::Tensor& theta) const {
    if (theta.size(-1) != layout_.size)
      throw InvalidArgument(fmt::format("model '{}' with frozen '{}' has {} trainable parameters, got a vector of {}",
                                        spec(), pattern_, layout_.size, theta.size(-1)));
  }
  torch::Tensor full_theta(const torch::Tensor& theta) const override {
    check_size(theta);
    auto base = values_.to(theta.device(), theta.scalar_type());
    auto index = index_.to(theta.device());
    if (theta.dim() == 1) return base.index_copy(0, index, theta);
    return base.unsqueeze(0).expand({theta.size(0), base.size(0)}).index_copy(1, index, theta);
  }

  torch::Tensor features(const torch::Tensor& x, const torch::Tensor& theta) const override {
    return inner_->find<LastLayerAccess>()->features(x, full_theta(theta));
  }
  LastLayer last_layer() const override { return last_; }

  torch::Tensor forward_dropout(const torch::Tensor& x, const torch::Tensor& theta, double p, uint64_t key,
                                int64_t row_offset, int64_t total_rows) const override {
    return inner_->find<DropoutForward>()->forward_dropout(x, full_theta(theta), p, key, row_offset, total_rows);
  }
  std::vector<std::string> dropout_blocks() const override {
    return inner_->find<DropoutForward>()->dropout_blocks();
  }

  // Frozen parameters have no spread: their standard deviation is zero.
  torch::Tensor forward_gaussian(const torch::Tensor& x, const torch::Tensor& mean, const torch::Tensor& sd,
                                 uint64_t key) const override {
    auto full_sd = at::zeros({values_.size(0)}, sd.options()).index_copy(0, index_.to(sd.device()), sd);
    return inner_->find<GaussianForward>()->forward_gaussian(x, full_theta(mean), full_sd, key);
  }

  torch::Tensor forward_reusing(const torch::Tensor& x, const torch::Tensor& theta,
                                ForwardTrace& trace) const override {
    return inner_->find<HandBackward>()->forward_reusing(x, full_theta(theta), trace);
  }
  void backward(ForwardTrace& trace, const torch::Tensor& theta, torch::Tensor& grad_out,
                torch::Tensor& grad) const override {
    if (!full_grad_.defined() || full_grad_.scalar_type() != grad.scalar_type()) full_grad_ = at::empty({values_.size(0)}, grad.options());
    inner_->find<HandBackward>()->backward(trace, full_theta(theta), grad_out, full_grad_);
    at::index_select_out(grad, full_grad_, 0, index_.to(grad.device()));
  }

  const Capability* find_capability(const std::type_info& type) const override {
    if (type == typeid(FrozenParameters)) return static_cast<const FrozenParameters*>(this);
    if (type == typeid(LastLayerAccess)) return has_last_ ? static_cast<const LastLayerAccess*>(this) : nullptr;
    if (type == typeid(DropoutForward)) return dropout_ok_ ? static_cast<const DropoutForward*>(this) : nullptr;
    if (type == typeid(GaussianForward))
      return inner_->find<GaussianForward>() ? static_cast<const GaussianForward*>(this) : nullptr;
    if (type == typeid(HandBackward))
      return inner_->find<HandBackward>() ? static_cast<const HandBackward*>(this) : nullptr;
    if (type == typeid(Architecture)) return inner_->find_capability(type);  // the same network
    return nullptr;
  }

 private:
  std::shared_ptr<Model> inner_;
  std::string pattern_;
  torch::Tensor values_, index_;
  ParamLayout layout_;
  std::map<int64_t, int64_t> block_of_;  // inner block -> trainable block
  LastLayer last_;
  bool has_last_ = false, dropout_ok_ = false;
  mutable torch::Tensor full_grad_;  // backward's buffer (the samplers call from one thread)
};

std::string layer_of(const std::string& name) { return name.substr(0, name.rfind('.')); }

}  // namespace

std::shared_ptr<Model> freeze_parameters(std::shared_ptr<Model> inner, const std::string& pattern,
                                         torch::Tensor values) {
  const auto& blocks = inner->layout().blocks;
  if (values.dim() != 1 || values.size(0) != inner->layout().size)
    throw InvalidArgument(fmt::format("frozen values for model '{}' must be [{}]", inner->spec(), inner->layout().size));
  std::vector<std::string> parts;
  for (const auto& p : split(pattern, ','))
    if (!trim(p).empty()) parts.push_back(trim(p));
  std::vector<bool> frozen(blocks.size(), false);
  std::vector<std::string> names, frozen_names;
  for (size_t i = 0; i < blocks.size(); ++i) {
    names.push_back(blocks[i].name);
    for (const auto& p : parts)
      frozen[i] = frozen[i] || blocks[i].name == p || blocks[i].name.rfind(p + ".", 0) == 0;
    if (frozen[i]) frozen_names.push_back(blocks[i].name);
  }
  if (frozen_names.empty())
    throw InvalidArgument(fmt::format("--freeze '{}' matches no parameter of model '{}' (its parameters: {})", pattern,
                                      inner->spec(), fmt::join(names, ", ")));
  if (frozen_names.size() == blocks.size())
    throw InvalidArgument(fmt::format("--freeze '{}' freezes every parameter of model '{}': nothing is left to fit",
                                      pattern, inner->spec()));
  // Curvature and subsets work layer by layer: a layer's tensors are frozen together.
  for (size_t i = 0; i < blocks.size(); ++i)
    for (size_t j = 0; j < blocks.size(); ++j)
      if (frozen[i] && !frozen[j] && layer_of(blocks[i].name) == layer_of(blocks[j].name))
        throw InvalidArgument(fmt::format("--freeze '{}' freezes {} but not {}; freeze a layer's tensors together "
                                          "(e.g. --freeze {})",
                                          pattern, blocks[i].name, blocks[j].name, layer_of(blocks[i].name)));
  auto on_device = values.detach().to(torch::TensorOptions().dtype(inner->dtype()).device(inner->device()));
  return std::make_shared<FrozenModel>(std::move(inner), pattern, std::move(on_device), std::move(frozen));
}

}  // namespace credence
