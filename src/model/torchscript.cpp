// A TorchScript module saved from Python, driven through a functional forward by binding
// slices of theta into its parameter slots before each call.
#include <fmt/format.h>
#include <torch/script.h>

#include "credence/core/error.h"
#include "credence/core/spec.h"
#include "sequential.h"

namespace credence {
namespace {

class TorchScriptModel : public Model, public LastLayerAccess {
 public:
  TorchScriptModel(std::string spec, const std::string& path, std::vector<int64_t> input_shape,
                   int64_t output_dim, torch::Dtype dtype, torch::Device device)
      : spec_(std::move(spec)), input_shape_(std::move(input_shape)), dtype_(dtype), device_(device) {
    try {
      module_ = torch::jit::load(path, device);
    } catch (const c10::Error& e) {
      throw IoError(fmt::format("cannot load TorchScript '{}': {} (save it with torch.jit.save from "
                                "PyTorch <= the LibTorch version here)",
                                path, std::string(e.what_without_backtrace()).substr(0, 200)));
    }
    module_.eval();
    module_.to(dtype);
    for (const auto& p : module_.named_parameters(/*recurse=*/true)) {
      ParamBlock b;
      b.name = p.name;
      b.shape = p.value.sizes().vec();
      b.numel = p.value.numel();
      b.offset = layout_.size;
      b.layer = static_cast<int>(layout_.blocks.size());
      layout_.size += b.numel;
      layout_.blocks.push_back(b);
      initial_.push_back(p.value.detach().reshape({-1}));
    }
    layout_.num_layers = static_cast<int>(layout_.blocks.size());
    if (layout_.size == 0) throw InvalidArgument(fmt::format("TorchScript '{}' has no parameters", path));
    std::vector<int64_t> probe_shape = {2};
    probe_shape.insert(probe_shape.end(), input_shape_.begin(), input_shape_.end());
    torch::NoGradGuard no_grad;
    torch::Tensor out;
    try {
      out = call("forward", torch::zeros(probe_shape, torch::TensorOptions().dtype(dtype).device(device)));
    } catch (const std::exception& e) {  // c10::Error or the interpreter's JITException
      std::string why = e.what();  // a traceback whose last line names the failure
      while (!why.empty() && why.back() == '\n') why.pop_back();
      why = why.substr(why.find_last_of('\n') == std::string::npos ? 0 : why.find_last_of('\n') + 1);
      throw InvalidArgument(fmt::format("TorchScript '{}' cannot take inputs [N, {}]: {}", path,
                                        fmt::join(input_shape_, ", "), why.substr(0, 200)));
    }
    if (out.dim() != 2 || out.size(1) != output_dim)
      throw InvalidArgument(fmt::format(
          "TorchScript '{}' maps inputs [N, {}] to [{}], but this task needs outputs [N, {}]", path,
          fmt::join(input_shape_, ", "), fmt::join(out.sizes(), ", "), output_dim));
    output_dim_ = output_dim;
    find_last_layer();
  }

  const std::string& spec() const override { return spec_; }
  const ParamLayout& layout() const override { return layout_; }
  const std::vector<int64_t>& input_shape() const override { return input_shape_; }
  int64_t output_dim() const override { return output_dim_; }
  torch::Dtype dtype() const override { return dtype_; }
  torch::Device device() const override { return device_; }

  /// The module's own (pretrained) weights: a TorchScript model arrives trained.
  torch::Tensor init_params(uint64_t) const override { return torch::cat(initial_).to(device_); }

  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& theta, ForwardTrace*) const override {
    return stacked_call("forward", x, theta);
  }
  torch::Tensor features(const torch::Tensor& x, const torch::Tensor& theta) const override {
    return stacked_call("features", x, theta);
  }
  LastLayer last_layer() const override { return last_; }

  // Last-layer access only for a module with `features(x)` feeding a final linear layer.
  const Capability* find_capability(const std::type_info& type) const override {
    if (type == typeid(LastLayerAccess) && last_.weight_block >= 0) return static_cast<const LastLayerAccess*>(this);
    return nullptr;
  }

 private:
  torch::Tensor stacked_call(const std::string& method, const torch::Tensor& x, const torch::Tensor& theta) const {
    if (theta.size(-1) != layout_.size)
      throw InvalidArgument(fmt::format("model '{}' has {} parameters, got a vector of {}", spec_,
                                        layout_.size, theta.size(-1)));
    if (theta.dim() == 1) {
      bind(theta);
      return call(method, x);
    }
    std::vector<torch::Tensor> outs;
    const bool per_set = x.dim() == static_cast<int64_t>(input_shape_.size()) + 2;
    for (int64_t s = 0; s < theta.size(0); ++s) {
      bind(theta[s]);
      outs.push_back(call(method, per_set ? x[s] : x));
    }
    return torch::stack(outs);
  }

  torch::Tensor call(const std::string& method, const torch::Tensor& x) const {
    return module_.get_method(method)({x}).toTensor();
  }

  void bind(const torch::Tensor& theta) const {
    auto parts = theta.split_with_sizes(layout_.numels());
    for (size_t i = 0; i < parts.size(); ++i) {
      const auto& b = layout_.blocks[i];
      auto path = split(b.name, '.');
      torch::jit::Module owner = module_;
      for (size_t k = 0; k + 1 < path.size(); ++k) owner = owner.attr(path[k]).toModule();
      owner.setattr(path.back(), parts[i].view(b.shape));
    }
  }

  void find_last_layer() {
    if (!module_.find_method("features") || layout_.blocks.size() < 2) return;
    const auto& w = layout_.blocks[layout_.blocks.size() - 2];
    const auto& b = layout_.blocks.back();
    if (w.shape.size() != 2 || b.shape.size() != 1 || w.shape[0] != output_dim_ || b.shape[0] != output_dim_)
      return;
    last_ = {static_cast<int64_t>(layout_.blocks.size() - 2), static_cast<int64_t>(layout_.blocks.size() - 1),
             w.shape[1], w.shape[0]};
  }

  std::string spec_;
  mutable torch::jit::Module module_;
  std::vector<int64_t> input_shape_;
  ParamLayout layout_;
  std::vector<torch::Tensor> initial_;
  LastLayer last_;
  int64_t output_dim_ = 0;
  torch::Dtype dtype_;
  torch::Device device_;
};

}  // namespace

std::shared_ptr<Model> make_torchscript(const std::string& text, const std::vector<int64_t>& input_shape,
                                        int64_t output_dim, torch::Dtype dtype, torch::Device device) {
  Spec spec = Spec::parse(text);
  if (spec.body.empty())
    throw InvalidArgument(fmt::format("model '{}': give the file, e.g. torchscript:net.pt", text));
  return std::make_shared<TorchScriptModel>(text, spec.body, input_shape, output_dim, dtype, device);
}

}  // namespace credence
