#include "sequential.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <ATen/core/grad_mode.h>

#include <cmath>
#include <mutex>

#include "credence/core/error.h"
#include "credence/core/rng.h"
#include "dropout_masks.h"

namespace credence {

SequentialModel::SequentialModel(std::string spec, std::vector<int64_t> input_shape,
                                 std::vector<LayerDef> layers, torch::Dtype dtype, torch::Device device)
    : stacked_cache_(std::make_shared<StackedCache>()), spec_(std::move(spec)), input_shape_(std::move(input_shape)),
      layers_(std::move(layers)), dtype_(dtype), device_(device) {
  int layer = 0;
  for (auto& l : layers_) {
    if (l.kind != LayerDef::Linear && l.kind != LayerDef::Conv) continue;
    std::vector<int64_t> wshape = l.kind == LayerDef::Linear
                                      ? std::vector<int64_t>{l.out, l.in}
                                      : std::vector<int64_t>{l.out, l.in, l.kernel, l.kernel};
    auto add = [&](const std::string& suffix, std::vector<int64_t> shape) {
      ParamBlock b;
      b.name = fmt::format("layer{}.{}", layer, suffix);
      b.numel = 1;
      for (auto s : shape) b.numel *= s;
      b.shape = std::move(shape);
      b.offset = layout_.size;
      b.layer = layer;
      layout_.size += b.numel;
      layout_.blocks.push_back(b);
      return static_cast<int>(layout_.blocks.size()) - 1;
    };
    l.weight_block = add("weight", wshape);
    l.bias_block = add("bias", {l.out});
    output_dim_ = l.out;
    ++layer;
  }
  layout_.num_layers = layer;
  layout_.kinds.assign(layer, LayerKind::Dense);
  if (layers_.empty() || layers_.back().kind != LayerDef::Linear)
    throw InvalidArgument(fmt::format("model '{}' must end in a linear layer", spec_));
}

torch::Tensor SequentialModel::init_params(uint64_t seed) const {
  auto gen = cpu_generator(rng_key(seed, Stream::Init));
  auto theta = at::empty({layout_.size}, at::TensorOptions().dtype(dtype_));
  for (const auto& l : layers_) {
    if (l.weight_block < 0) continue;
    // PyTorch's default (kaiming-uniform with a = sqrt(5)): U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    double fan_in = static_cast<double>(l.in) * (l.kind == LayerDef::Conv ? l.kernel * l.kernel : 1);
    double bound = 1.0 / std::sqrt(fan_in);
    for (int b : {l.weight_block, l.bias_block}) {
      const auto& blk = layout_.blocks[b];
      theta.narrow(0, blk.offset, blk.numel).uniform_(-bound, bound, gen);
    }
  }
  return theta.to(device_);
}

struct SequentialModel::StackedCache {
  std::mutex mutex;
  torch::Tensor seen;  // the last stacked parameters, held so their address is not reused
  int64_t version = -1;
  std::vector<torch::Tensor> weights;  // laid out for `seen`, once it came twice
};

std::vector<torch::Tensor> SequentialModel::stacked_weights(const torch::Tensor& theta,
                                                            const std::vector<torch::Tensor>& parts) const {
  const int64_t S = theta.size(0);
  // [S, in, out] views of [S, out, in] blocks: the products run as BLAS's transposed case,
  // which at batch size one is far faster than with the block copied as [S, in, out].
  auto laid_out = [&](bool contiguous) {
    std::vector<torch::Tensor> w(layers_.size());
    for (size_t i = 0; i < layers_.size(); ++i) {
      if (layers_[i].kind != LayerDef::Linear) continue;
      auto block = parts[layers_[i].weight_block].view({S, layers_[i].out, layers_[i].in});
      w[i] = (contiguous ? block.contiguous() : block).transpose(1, 2);
    }
    return w;
  };
  if (theta.requires_grad() || at::GradMode::is_enabled()) return laid_out(false);
  std::lock_guard<std::mutex> lock(stacked_cache_->mutex);
  auto& c = *stacked_cache_;
  const bool same = c.seen.defined() && c.seen.is_same(theta) && c.version == static_cast<int64_t>(theta._version());
  if (!same) {
    c.seen = theta;
    c.version = static_cast<int64_t>(theta._version());
    c.weights.clear();
    return laid_out(false);
  }
  if (c.weights.empty()) c.weights = laid_out(true);
  return c.weights;
}

namespace {
// Stacked activations of S parameter sets are kept in one of three layouts so that linear layers
// use batched matmuls and conv layers use one grouped convolution.
enum class Layout { Plain, Stacked, Grouped };  // [N,...], [S,N,...], [N, S*C, H, W]
}  // namespace

torch::Tensor SequentialModel::run(const torch::Tensor& x, const torch::Tensor& theta,
                                   size_t num_layers, ForwardTrace* trace, DropoutMasks* dropout) const {
  if (theta.dim() != 1 && theta.dim() != 2)
    throw InvalidArgument(fmt::format("parameters must be [P] or [S, P], got {} dims", theta.dim()));
  if (theta.size(-1) != layout_.size)
    throw InvalidArgument(fmt::format("model '{}' has {} parameters, got a vector of {}", spec_,
                                      layout_.size, theta.size(-1)));
  const bool stacked = theta.dim() == 2;
  auto parts = theta.split_with_sizes(layout_.numels(), stacked ? 1 : 0);
  return run_parts(x, parts, stacked ? stacked_weights(theta, parts) : std::vector<torch::Tensor>(), num_layers,
                   trace, dropout);
}

torch::Tensor SequentialModel::forward_blocks(const torch::Tensor& x, const std::vector<torch::Tensor>& blocks,
                                              ForwardTrace* trace) const {
  const int64_t dims = check_blocks(layout_, spec_, blocks);
  std::vector<torch::Tensor> weights;
  if (dims == 2)
    for (const auto& l : layers_)
      weights.push_back(l.kind == LayerDef::Linear
                            ? blocks[l.weight_block].view({blocks[0].size(0), l.out, l.in}).transpose(1, 2)
                            : torch::Tensor());
  return run_parts(x, blocks, weights, layers_.size(), dims == 1 ? trace : nullptr, nullptr);
}

torch::Tensor SequentialModel::run_parts(const torch::Tensor& x, const std::vector<torch::Tensor>& parts,
                                         const std::vector<torch::Tensor>& weights, size_t num_layers,
                                         ForwardTrace* trace, DropoutMasks* dropout) const {
  const bool stacked = parts.front().dim() == 2;
  const int64_t S = stacked ? parts.front().size(0) : 1;
  // One input set per parameter vector: [S, N, ...] (e.g. ensemble members on their own batches).
  const bool per_set = stacked && x.dim() == static_cast<int64_t>(input_shape_.size()) + 2;
  if (per_set && x.size(0) != S)
    throw InvalidArgument(fmt::format("{} input sets for {} parameter vectors", x.size(0), S));
  const int64_t N = per_set ? x.size(1) : x.size(0);
  torch::Tensor h = x;
  Layout mode = Layout::Plain;
  if (per_set && layers_.front().kind == LayerDef::Linear) {
    h = h.reshape({S, N, -1});
    mode = Layout::Stacked;
  } else if (per_set) {  // [S, N, C, H, W] -> grouped channels [N, S * C, H, W]
    h = h.transpose(0, 1).reshape({N, -1, h.size(-2), h.size(-1)});
    mode = Layout::Grouped;
  } else if (layers_.front().kind == LayerDef::Linear) {
    h = h.reshape({N, -1});
  }
  for (size_t i = 0; i < num_layers; ++i) {
    const auto& l = layers_[i];
    switch (l.kind) {
      case LayerDef::Linear: {
        if (dropout) {  // per-set masks turn a shared [N, in] input into [S, N, in]
          h = dropout->apply(h, stacked ? S : 0);
          if (stacked) mode = Layout::Stacked;
        }
        if (!stacked) {
          if (trace) trace->inputs.push_back(h);
          h = at::linear(h, parts[l.weight_block].view({l.out, l.in}), parts[l.bias_block]);
          if (trace) trace->outputs.push_back(h);
        } else {
          const auto& W = weights[i];
          auto b = parts[l.bias_block].view({S, 1, l.out});
          h = mode == Layout::Plain ? at::matmul(h, W).add_(b) : at::baddbmm(b, h, W);
          mode = Layout::Stacked;
        }
        break;
      }
      case LayerDef::Conv: {
        if (!stacked) {
          if (trace)  // the unfolded patches [N, locations, in * k * k]: a linear layer shared by locations
            trace->inputs.push_back(
                at::im2col(h.detach(), {l.kernel, l.kernel}, {1, 1}, {l.padding, l.padding}, {1, 1}).transpose(1, 2));
          h = at::conv2d(h, parts[l.weight_block].view({l.out, l.in, l.kernel, l.kernel}),
                         parts[l.bias_block], 1, l.padding);
          if (trace) trace->outputs.push_back(h);
        } else {
          if (mode == Layout::Plain) h = h.repeat({1, S, 1, 1});
          auto W = parts[l.weight_block].reshape({S * l.out, l.in, l.kernel, l.kernel});
          h = at::conv2d(h, W, parts[l.bias_block].reshape({S * l.out}), 1, l.padding, 1, S);
          mode = Layout::Grouped;
        }
        break;
      }
      case LayerDef::MaxPool: h = at::max_pool2d(h, {2, 2}); break;
      case LayerDef::Flatten:
        if (mode == Layout::Grouped) {
          h = h.reshape({N, S, -1}).transpose(0, 1);
          mode = Layout::Stacked;
        } else {
          h = h.flatten(1);
        }
        break;
      case LayerDef::ReLU: h = at::relu(h); break;
      case LayerDef::Tanh: h = at::tanh(h); break;
    }
  }
  if (stacked && mode == Layout::Plain) h = h.unsqueeze(0).expand({S, N, h.size(-1)});
  return h;
}

torch::Tensor SequentialModel::forward(const torch::Tensor& x, const torch::Tensor& theta,
                                       ForwardTrace* trace) const {
  return run(x, theta, layers_.size(), theta.dim() == 1 ? trace : nullptr);
}

const Capability* SequentialModel::find_capability(const std::type_info& type) const {
  if (type == typeid(LastLayerAccess)) return static_cast<const LastLayerAccess*>(this);
  if (type == typeid(DropoutForward)) return static_cast<const DropoutForward*>(this);
  if (type == typeid(GaussianForward)) return static_cast<const GaussianForward*>(this);
  if (type == typeid(BlockForward)) return static_cast<const BlockForward*>(this);
  if (type == typeid(HandBackward)) return fully_connected() ? static_cast<const HandBackward*>(this) : nullptr;
  if (type == typeid(LayerJacobian)) return fully_connected() ? static_cast<const LayerJacobian*>(this) : nullptr;
  return nullptr;
}

bool SequentialModel::fully_connected() const {
  for (const auto& l : layers_)
    if (l.kind == LayerDef::Conv || l.kind == LayerDef::MaxPool || (l.kind == LayerDef::Linear && l.bias_block < 0))
      return false;
  return true;
}

namespace {
// buffers[i] when it already has this shape and dtype, else a new tensor in its place.
torch::Tensor& reuse(std::vector<torch::Tensor>& buffers, size_t i, const torch::IntArrayRef shape,
                     const torch::TensorOptions& options) {
  if (buffers.size() <= i) buffers.resize(i + 1);
  auto& b = buffers[i];
  if (!b.defined() || b.sizes() != shape || b.dtype() != options.dtype()) b = at::empty(shape, options);
  return b;
}
}  // namespace

torch::Tensor SequentialModel::forward_reusing(const torch::Tensor& x, const torch::Tensor& theta,
                                               ForwardTrace& trace) const {
  if (!fully_connected() || theta.dim() != 1) {
    trace = ForwardTrace();
    return forward(x, theta, &trace);
  }
  if (theta.size(0) != layout_.size)
    throw InvalidArgument(fmt::format("model '{}' has {} parameters, got a vector of {}", spec_, layout_.size,
                                      theta.size(0)));
  at::NoGradGuard no_grad;
  auto parts = theta.split_with_sizes(layout_.numels());
  const auto options = x.options();
  torch::Tensor h = x.reshape({x.size(0), -1});
  size_t j = 0;
  trace.inputs.resize(layout_.num_layers);
  for (const auto& l : layers_) {
    switch (l.kind) {
      case LayerDef::Linear: {
        trace.inputs[j] = h;
        auto& out = reuse(trace.outputs, j, {h.size(0), l.out}, options);
        at::addmm_out(out, parts[l.bias_block], h, parts[l.weight_block].view({l.out, l.in}).t());
        h = out;
        ++j;
        break;
      }
      // Activations write into the next layer's input buffer, kept in scratch's upper half.
      case LayerDef::ReLU: {
        auto& a = reuse(trace.scratch, layout_.num_layers + j, h.sizes(), options);
        at::clamp_min_out(a, h, 0);
        h = a;
        break;
      }
      case LayerDef::Tanh: {
        auto& a = reuse(trace.scratch, layout_.num_layers + j, h.sizes(), options);
        at::tanh_out(a, h);
        h = a;
        break;
      }
      default: break;  // Flatten: done above
    }
  }
  return h;
}

void SequentialModel::backward(ForwardTrace& trace, const torch::Tensor& theta, torch::Tensor& grad_out,
                               torch::Tensor& grad) const {
  if (!fully_connected())
    throw NotSupported(fmt::format("model '{}' has no hand-written backward pass (convolutions); use autograd", spec_));
  const auto linear_layers = static_cast<size_t>(layout_.num_layers);
  if (theta.dim() != 1 || trace.inputs.size() != linear_layers || trace.outputs.size() != linear_layers)
    throw InvalidArgument("backward needs the trace of a forward pass with one parameter vector");
  at::NoGradGuard no_grad;
  auto parts = theta.split_with_sizes(layout_.numels());
  auto grads = grad.split_with_sizes(layout_.numels());
  torch::Tensor g = grad_out;
  auto j = static_cast<int64_t>(linear_layers) - 1;  // the linear layer g flows into, walking back
  for (auto it = layers_.rbegin(); it != layers_.rend(); ++it) {
    const auto& l = *it;
    switch (l.kind) {
      case LayerDef::Linear: {
        auto gw = grads[l.weight_block].view({l.out, l.in});
        at::mm_out(gw, g.t(), trace.inputs[j]);
        auto gb = grads[l.bias_block];
        at::sum_out(gb, g, 0);
        if (j > 0) {
          auto& next = reuse(trace.scratch, j, trace.inputs[j].sizes(), g.options());
          at::mm_out(next, g, parts[l.weight_block].view({l.out, l.in}));
          g = next;
        }
        --j;
        break;
      }
      case LayerDef::ReLU: at::threshold_backward_out(g, g, trace.outputs[j], 0); break;
      case LayerDef::Tanh: g.mul_(1 - trace.inputs[j + 1].pow(2)); break;  // tanh' = 1 - tanh^2
      default: break;  // Flatten only reshapes the input, whose gradient is not needed
    }
  }
}

torch::Tensor SequentialModel::forward_jacobian(const torch::Tensor& x, const torch::Tensor& theta,
                                                const OutputDirections& directions, ForwardTrace& trace,
                                                std::vector<torch::Tensor>& grads) const {
  if (!fully_connected() || theta.dim() != 1)
    throw NotSupported(fmt::format("model '{}' has no hand-written layer Jacobian for this call; use autograd", spec_));
  at::NoGradGuard no_grad;
  trace = ForwardTrace();
  auto f = run(x, theta, layers_.size(), &trace);
  auto parts = theta.split_with_sizes(layout_.numels());
  grads.assign(trace.outputs.size(), torch::Tensor());
  auto g = directions(f).transpose(1, 2);  // [n, D, O]: each direction's gradient in the outputs
  auto j = static_cast<int64_t>(trace.outputs.size()) - 1;  // the linear layer g flows into, walking back
  for (auto it = layers_.rbegin(); it != layers_.rend(); ++it) {
    switch (it->kind) {
      case LayerDef::Linear:
        grads[j] = g.contiguous();
        if (j > 0) g = g.matmul(parts[it->weight_block].view({it->out, it->in}));
        --j;
        break;
      case LayerDef::ReLU: g = g * (trace.outputs[j] > 0).unsqueeze(1).to(g.scalar_type()); break;
      case LayerDef::Tanh: g = g * (1 - trace.inputs[j + 1].pow(2)).unsqueeze(1); break;
      default: break;  // Flatten only reshapes the input
    }
  }
  return f;
}

torch::Tensor SequentialModel::forward_dropout(const torch::Tensor& x, const torch::Tensor& theta, double p,
                                               uint64_t key, int64_t row_offset, int64_t total_rows) const {
  auto dropout = DropoutMasks::checked(p, key, row_offset, x.size(0), total_rows);
  return run(x, theta, layers_.size(), nullptr, &dropout);
}

std::vector<std::string> SequentialModel::dropout_blocks() const {
  std::vector<std::string> names;
  for (const auto& l : layers_)
    if (l.kind == LayerDef::Linear) names.push_back(layout_.blocks[l.weight_block].name);
  return names;
}

torch::Tensor SequentialModel::features(const torch::Tensor& x, const torch::Tensor& theta) const {
  return run(x, theta, layers_.size() - 1, nullptr);
}

LastLayer SequentialModel::last_layer() const {
  const auto& l = layers_.back();
  return {l.weight_block, l.bias_block, l.in, l.out};
}

}  // namespace credence

namespace credence {

torch::Tensor SequentialModel::forward_gaussian(const torch::Tensor& x, const torch::Tensor& mean,
                                                const torch::Tensor& sd, uint64_t key) const {
  if (mean.dim() != 1 || mean.sizes() != sd.sizes() || mean.size(0) != layout_.size)
    throw InvalidArgument(fmt::format("model '{}' has {} parameters; mean and sd must both be [{}]", spec_,
                                      layout_.size, layout_.size));
  auto gen = cpu_generator(key);
  const auto cpu = at::TensorOptions().dtype(mean.scalar_type());
  auto normal = [&](at::IntArrayRef shape) { return at::randn(shape, gen, cpu).to(mean.device()); };
  auto signs = [&](at::IntArrayRef shape) {
    return at::empty(shape, cpu).bernoulli_(0.5, gen).mul_(2).sub_(1).to(mean.device());
  };
  auto m = mean.split_with_sizes(layout_.numels()), s = sd.split_with_sizes(layout_.numels());
  const int64_t N = x.size(0);
  torch::Tensor h = layers_.front().kind == LayerDef::Linear ? x.reshape({N, -1}) : x;
  for (const auto& l : layers_) {
    switch (l.kind) {
      case LayerDef::Linear: {
        auto W = m[l.weight_block].view({l.out, l.in}), Ws = s[l.weight_block].view({l.out, l.in});
        auto mu = at::linear(h, W, m[l.bias_block]);
        auto var = at::linear(h * h, Ws * Ws, s[l.bias_block] * s[l.bias_block]);
        h = mu + var.sqrt() * normal({N, l.out});
        break;
      }
      case LayerDef::Conv: {
        const std::vector<int64_t> shape = {l.out, l.in, l.kernel, l.kernel};
        auto W = m[l.weight_block].view(shape);
        auto dW = s[l.weight_block].view(shape) * normal(shape);
        auto db = s[l.bias_block] * normal({l.out});
        auto mu = at::conv2d(h, W, m[l.bias_block], 1, l.padding);
        h = mu + at::conv2d(h * signs({N, l.in, 1, 1}), dW, db, 1, l.padding) * signs({N, l.out, 1, 1});
        break;
      }
      case LayerDef::MaxPool: h = at::max_pool2d(h, {2, 2}); break;
      case LayerDef::Flatten: h = h.flatten(1); break;
      case LayerDef::ReLU: h = at::relu(h); break;
      case LayerDef::Tanh: h = at::tanh(h); break;
    }
  }
  return h;
}

}  // namespace credence
