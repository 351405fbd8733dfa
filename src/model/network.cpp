#include "credence/model/network.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "credence/core/error.h"
#include "credence/core/rng.h"
#include "dropout_masks.h"

namespace credence {

NetworkModel::NetworkModel(std::string spec, std::vector<int64_t> input_shape, std::vector<NetOp> ops,
                           torch::Dtype dtype, torch::Device device)
    : spec_(std::move(spec)), input_shape_(std::move(input_shape)), ops_(std::move(ops)), dtype_(dtype),
      device_(device) {
  if (input_shape_.size() != 3 && input_shape_.size() != 1)
    throw InvalidArgument(fmt::format("model '{}' needs image inputs [C, H, W] or feature vectors [F]; this data has shape [{}]",
                                      spec_, fmt::join(input_shape_, ", ")));
  if (ops_.empty() || ops_.back().kind != NetOp::Linear)
    throw InvalidArgument(fmt::format("model '{}' must end in a linear layer", spec_));
  auto add = [&](const std::string& name, std::vector<int64_t> shape) {
    ParamBlock b;
    b.name = name;
    b.numel = 1;
    for (auto s : shape) b.numel *= s;
    b.shape = std::move(shape);
    b.offset = layout_.size;
    b.layer = layout_.num_layers;
    layout_.size += b.numel;
    layout_.blocks.push_back(b);
    return static_cast<int>(layout_.blocks.size()) - 1;
  };
  for (auto& op : ops_) {
    if (op.slot < 0 || op.slot > 64)
      throw InvalidArgument(fmt::format("model '{}': op '{}' uses slot {}; slots are 0..64", spec_, op.name, op.slot));
    num_slots_ = std::max(num_slots_, op.slot + 1);
    switch (op.kind) {
      case NetOp::Conv:
      case NetOp::Linear:
        op.weight_block = add(op.name + ".weight", op.kind == NetOp::Conv
                                                       ? std::vector<int64_t>{op.out, op.in, op.kernel, op.kernel}
                                                       : std::vector<int64_t>{op.out, op.in});
        if (op.bias) op.bias_block = add(op.name + ".bias", {op.out});
        layout_.kinds.push_back(LayerKind::Dense);
        break;
      case NetOp::GroupNorm:
      case NetOp::LayerNorm:
      case NetOp::ChannelAffine:
        op.weight_block = add(op.name + ".weight", {op.out});
        op.bias_block = add(op.name + ".bias", {op.out});
        layout_.kinds.push_back(LayerKind::Scale);
        break;
      case NetOp::PosEmbed:
        op.weight_block = add(op.name, {op.groups, op.out});
        layout_.kinds.push_back(LayerKind::Shift);
        break;
      case NetOp::Embed:  // a bias-free dense layer on one-hot ids, stored as PyTorch's [in, out] table
        op.bias = false;
        op.weight_block = add(op.name + ".weight", {op.out, op.in});
        layout_.blocks.back().transposed = true;
        layout_.kinds.push_back(LayerKind::Dense);
        break;
      default: continue;
    }
    ++layout_.num_layers;
  }
}

torch::Tensor NetworkModel::init_params(uint64_t seed) const {
  auto gen = cpu_generator(rng_key(seed, Stream::Init));
  auto theta = at::empty({layout_.size}, at::TensorOptions().dtype(dtype_));
  auto block = [&](int b) { return theta.narrow(0, layout_.blocks[b].offset, layout_.blocks[b].numel); };
  for (const auto& op : ops_) {
    switch (op.kind) {
      case NetOp::Conv:
      case NetOp::Linear: {  // PyTorch's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
        double bound = op.zero_init ? 0.0 : 1.0 / std::sqrt(static_cast<double>(op.in * op.kernel * op.kernel));
        block(op.weight_block).uniform_(-bound, bound, gen);
        if (op.bias) block(op.bias_block).uniform_(-bound, bound, gen);
        break;
      }
      case NetOp::GroupNorm:
      case NetOp::LayerNorm:
      case NetOp::ChannelAffine:
        block(op.weight_block).fill_(1.0);
        block(op.bias_block).zero_();
        break;
      case NetOp::PosEmbed: block(op.weight_block).normal_(0.0, 0.02, gen); break;
      case NetOp::Embed: block(op.weight_block).normal_(0.0, 1.0, gen); break;  // PyTorch's default
      default: break;
    }
  }
  return theta.to(device_);
}

namespace {
// Activations of S stacked parameter sets: images as grouped channels [N, S * C, H, W], other
// tensors with a leading set axis [S, N, ...]. Until the first parametric op, the input is shared
// by every set and kept once (`per_set` false).
struct Activation {
  torch::Tensor h;
  bool image = true;
  bool per_set = false;
};

// `a` with one copy per set, S sets of `channels` channels (images) or a leading axis (others).
torch::Tensor per_set_copy(const Activation& a, int64_t S) {
  if (a.per_set) return a.h;
  if (a.image) return a.h.repeat({1, S, 1, 1});
  auto shape = a.h.sizes().vec();
  shape.insert(shape.begin(), S);
  return a.h.unsqueeze(0).expand(shape).contiguous();
}

// A stacked parameter block [S, numel] viewed with a set axis and `shape`.
torch::Tensor set_view(const torch::Tensor& block, int64_t S, std::vector<int64_t> shape) {
  shape.insert(shape.begin(), S);
  return block.reshape(shape);
}

// Scale-and-shift of the last axis by [S, C] parameters, broadcast over [S, ..., C].
torch::Tensor affine_last(const torch::Tensor& h, const torch::Tensor& w, const torch::Tensor& b) {
  std::vector<int64_t> shape(h.dim(), 1);
  shape.front() = w.size(0);
  shape.back() = w.size(1);
  return h * w.reshape(shape) + b.reshape(shape);
}

// Inputs that must be token ids as int64, refused unless whole numbers in [0, vocab).
torch::Tensor token_ids(const torch::Tensor& h, int64_t vocab, const std::string& spec) {
  auto ids = h.to(at::kLong);
  if (h.is_floating_point() && !at::equal(ids.to(h.scalar_type()), h))
    throw InvalidArgument(fmt::format(
        "model '{}' takes token ids, whole numbers in [0, {}), but its inputs hold fractions (were they "
        "standardized? give csv data inputs=tokens)",
        spec, vocab));
  if (ids.numel() == 0) return ids;
  auto [lo, hi] = at::aminmax(ids);
  const int64_t low = lo.item<int64_t>(), high = hi.item<int64_t>();
  if (low < 0 || high >= vocab)
    throw InvalidArgument(fmt::format("model '{}': token id {} is outside [0, {}) (set the model's vocab= to at "
                                      "least {})",
                                      spec, low < 0 ? low : high, vocab, std::max(high + 1, vocab)));
  return ids;
}

bool constant_in_every_set(const std::vector<torch::Tensor>& parts, const NetOp& op) {
  const bool grad_mode = at::GradMode::is_enabled();
  for (int b : {op.weight_block, op.bias_block}) {
    if (b < 0) continue;
    const auto& p = parts[b];
    if (grad_mode && p.requires_grad()) return false;
    if (p.stride(0) != 0 && !at::equal(p, p.narrow(0, 0, 1).expand_as(p))) return false;
  }
  return true;
}
}  // namespace

torch::Tensor NetworkModel::run(const torch::Tensor& x, const torch::Tensor& theta, size_t num_ops,
                                ForwardTrace* trace, DropoutMasks* dropout) const {
  if (theta.dim() != 1 && theta.dim() != 2)
    throw InvalidArgument(fmt::format("parameters must be [P] or [S, P], got {} dims", theta.dim()));
  if (theta.size(-1) != layout_.size)
    throw InvalidArgument(fmt::format("model '{}' has {} parameters, got a vector of {}", spec_, layout_.size,
                                      theta.size(-1)));
  auto parts = theta.split_with_sizes(layout_.numels(), theta.dim() - 1);
  return run_blocks(x, parts, num_ops, theta.dim() == 1 ? trace : nullptr, dropout);
}

torch::Tensor NetworkModel::forward_blocks(const torch::Tensor& x, const std::vector<torch::Tensor>& blocks,
                                           ForwardTrace* trace) const {
  const int64_t dims = check_blocks(layout_, spec_, blocks);
  return run_blocks(x, blocks, ops_.size(), dims == 1 ? trace : nullptr, nullptr);
}

torch::Tensor NetworkModel::run_blocks(const torch::Tensor& x, const std::vector<torch::Tensor>& parts,
                                       size_t num_ops, ForwardTrace* trace, DropoutMasks* dropout) const {
  const bool stacked = !parts.empty() && parts.front().dim() == 2;
  const int64_t S = stacked ? parts.front().size(0) : 1;
  const auto in_dims = static_cast<int64_t>(input_shape_.size());
  const bool image = in_dims == 3;
  const bool per_set_input = stacked && x.dim() == in_dims + 2;
  if (per_set_input && x.size(0) != S)
    throw InvalidArgument(fmt::format("{} input sets for {} parameter vectors", x.size(0), S));
  if (x.dim() != in_dims + (per_set_input ? 2 : 1))
    throw InvalidArgument(fmt::format("model '{}' takes inputs [N, {}], got {} dims", spec_,
                                      fmt::join(input_shape_, ", "), x.dim()));
  const int64_t N = per_set_input ? x.size(1) : x.size(0);
  // Per-set images become grouped channels; per-set feature vectors keep their leading set axis.
  Activation a{per_set_input && image ? x.transpose(0, 1).reshape({N, -1, x.size(-2), x.size(-1)}) : x, image,
               !stacked || per_set_input};
  std::vector<Activation> slots(num_slots_);
  for (size_t i = 0; i < num_ops; ++i) {
    const auto& op = ops_[i];
    auto& h = a.h;
    // While every set still shares the activation, an op whose parameters are constants (a
    // frozen backbone's, or anything when predicting) and the same in every set runs once for all.
    const bool shared_op = stacked && !a.per_set && op.weight_block >= 0 && !(dropout && i + 1 == ops_.size()) &&
                           constant_in_every_set(parts, op);
    const bool st = stacked && !shared_op;
    auto param = [&](int block) { return shared_op ? parts[block][0] : parts[block]; };
    // A constant layer (a frozen backbone's) among differentiated ones is not traced: no curvature
    // is taken over it, and unfolding a convolution's patches costs about as much as the convolution.
    ForwardTrace* op_trace = trace && op.weight_block >= 0 && at::GradMode::is_enabled() &&
                                     !parts[op.weight_block].requires_grad()
                                 ? nullptr
                                 : trace;
    switch (op.kind) {
      case NetOp::Conv: {
        const auto W = param(op.weight_block);
        const auto b = op.bias ? param(op.bias_block) : torch::Tensor();
        if (op.scale != 1.0) h = h * op.scale;
        if (st && a.per_set && constant_in_every_set(parts, op)) {
          // One weight for every set (a frozen backbone's): an ordinary convolution over the sets'
          // images side by side in the batch costs less than a grouped one with the weight repeated.
          const int64_t H = h.size(-2), Wd = h.size(-1);
          auto sets = h.reshape({N, S, op.in, H, Wd}).transpose(0, 1).reshape({S * N, op.in, H, Wd});
          auto y = at::conv2d(sets, W[0].view({op.out, op.in, op.kernel, op.kernel}), op.bias ? b[0] : b, op.stride,
                              op.padding);
          h = y.view({S, N, op.out, y.size(-2), y.size(-1)}).transpose(0, 1).reshape({N, S * op.out, y.size(-2), y.size(-1)});
        } else if (!st) {
          if (op_trace)  // unfolded patches [N, locations, in * k * k]: a linear layer shared by locations
            op_trace->inputs.push_back(at::im2col(h.detach(), {op.kernel, op.kernel}, {1, 1}, {op.padding, op.padding},
                                               {op.stride, op.stride})
                                        .transpose(1, 2));
          h = at::conv2d(h, W.view({op.out, op.in, op.kernel, op.kernel}), b, op.stride, op.padding);
          if (op_trace) op_trace->outputs.push_back(h);
        } else {
          h = at::conv2d(per_set_copy(a, S), W.reshape({S * op.out, op.in, op.kernel, op.kernel}),
                         op.bias ? b.reshape({S * op.out}) : b, op.stride, op.padding, 1, S);
        }
        break;
      }
      case NetOp::Linear: {
        if (dropout && i + 1 == ops_.size()) h = dropout->apply(h, st ? S : 0);
        const auto W = param(op.weight_block);
        const auto b = op.bias ? param(op.bias_block) : torch::Tensor();
        if (op.scale != 1.0) h = h * op.scale;
        if (!st) {
          if (op_trace) op_trace->inputs.push_back(h.detach());
          h = at::linear(h, W.view({op.out, op.in}), b);
          if (op_trace) op_trace->outputs.push_back(h);
        } else {
          auto in = per_set_copy(a, S);
          auto shape = in.sizes().vec();
          shape.back() = op.out;
          auto x3 = in.reshape({S, -1, op.in});
          auto Wt = W.view({S, op.out, op.in}).transpose(1, 2);
          h = (op.bias ? at::baddbmm(b.view({S, 1, op.out}), x3, Wt) : at::bmm(x3, Wt)).view(shape);
        }
        break;
      }
      case NetOp::GroupNorm: {
        const auto w = param(op.weight_block);
        const auto b = param(op.bias_block);
        if (!st && op_trace) {  // the normalized input is this Scale layer's factor
          auto normalized = at::group_norm(h, op.groups);
          op_trace->inputs.push_back(normalized.detach());
          h = normalized * w.view({1, op.out, 1, 1}) + b.view({1, op.out, 1, 1});
          op_trace->outputs.push_back(h);
        } else if (!st) {
          h = at::group_norm(h, op.groups, w, b);
        } else {  // groups never straddle sets: S * groups groups over S * C channels
          h = at::group_norm(per_set_copy(a, S), S * op.groups, w.reshape({S * op.out}), b.reshape({S * op.out}));
        }
        break;
      }
      case NetOp::ChannelAffine: {
        if (!a.image) throw InvalidArgument(fmt::format("model '{}': channel_affine '{}' needs images", spec_, op.name));
        const auto w = param(op.weight_block);
        const auto b = param(op.bias_block);
        if (!st) {  // the input itself is this Scale layer's factor
          if (op_trace) op_trace->inputs.push_back(h.detach());
          h = h * w.view({1, op.out, 1, 1}) + b.view({1, op.out, 1, 1});
          if (op_trace) op_trace->outputs.push_back(h);
        } else {  // grouped channels: set s's channels are s * C ... (s + 1) * C - 1
          h = per_set_copy(a, S) * w.reshape({1, S * op.out, 1, 1}) + b.reshape({1, S * op.out, 1, 1});
        }
        break;
      }
      case NetOp::MaxPool:
        if (!a.image) throw InvalidArgument(fmt::format("model '{}': max_pool needs images", spec_));
        h = at::max_pool2d(h, {op.kernel, op.kernel}, {op.stride, op.stride}, {op.padding, op.padding});
        break;
      case NetOp::LayerNorm: {
        const auto w = param(op.weight_block);
        const auto b = param(op.bias_block);
        if (!st && op_trace) {
          auto normalized = at::layer_norm(h, {op.out});
          op_trace->inputs.push_back(normalized.detach());
          h = normalized * w + b;
          op_trace->outputs.push_back(h);
        } else if (!st) {
          h = at::layer_norm(h, {op.out}, w, b);
        } else {
          h = affine_last(at::layer_norm(per_set_copy(a, S), {op.out}), w, b);
        }
        break;
      }
      case NetOp::PosEmbed: {
        const auto w = param(op.weight_block);
        if (!st) {
          if (op_trace) op_trace->inputs.push_back(torch::Tensor());
          h = h + w.view({op.groups, op.out});
          if (op_trace) op_trace->outputs.push_back(h);
        } else {
          h = per_set_copy(a, S) + set_view(w, S, {1, op.groups, op.out});
        }
        break;
      }
      case NetOp::Embed: {
        const auto W = param(op.weight_block);
        const auto ids = token_ids(h, op.in, spec_);
        if (!st) {
          if (op_trace) op_trace->inputs.push_back(at::one_hot(ids, op.in).to(h.scalar_type()));  // the dense input
          h = at::embedding(W.view({op.out, op.in}).t(), ids);
          if (op_trace) op_trace->outputs.push_back(h);
        } else {  // the S tables stacked: set s's id k is row s * in + k
          auto table = W.view({S, op.out, op.in}).transpose(1, 2).reshape({S * op.in, op.out});
          auto offsets = at::arange(S, ids.options()).mul_(op.in).view({S, 1, 1});
          h = at::embedding(table, (a.per_set ? ids : ids.unsqueeze(0)) + offsets);
        }
        a.image = false;
        break;
      }
      case NetOp::ReLU: h = at::relu(h); break;
      case NetOp::GELU: h = at::gelu(h); break;
      case NetOp::Save: slots.at(op.slot) = a; break;
      case NetOp::Swap: std::swap(a, slots.at(op.slot)); break;
      case NetOp::Add: {
        auto& other = slots.at(op.slot);
        if (stacked && a.per_set != other.per_set) {
          a.h = per_set_copy(a, S);
          other.h = per_set_copy(other, S);
        }
        a.h = a.h + other.h;
        a.per_set = a.per_set || other.per_set;
        other = Activation();
        continue;
      }
      case NetOp::Attention: {
        const int64_t heads = op.groups, dim = op.out, hd = dim / heads;
        auto qkv = h.chunk(3, -1);
        auto split_heads = [&](const torch::Tensor& t) {
          auto shape = t.sizes().vec();
          shape.back() = heads;
          shape.push_back(hd);
          return t.reshape(shape).transpose(-2, -3);  // [..., heads, T, hd]
        };
        auto q = split_heads(qkv[0]), k = split_heads(qkv[1]), v = split_heads(qkv[2]);
        auto weights = at::softmax(at::matmul(q, k.transpose(-1, -2)) / std::sqrt(static_cast<double>(hd)), -1);
        auto o = at::matmul(weights, v).transpose(-2, -3);  // [..., T, heads, hd]
        auto shape = o.sizes().vec();
        shape.pop_back();
        shape.back() = dim;
        h = o.reshape(shape);
        break;
      }
      case NetOp::ToTokens: {
        if (stacked && a.per_set)
          h = h.reshape({N, S, op.out, -1}).permute({1, 0, 3, 2});
        else
          h = h.flatten(2).transpose(1, 2);
        a.image = false;
        break;
      }
      case NetOp::MeanTokens: h = h.mean(-2); break;
      case NetOp::GlobalPool: {
        h = h.mean(at::IntArrayRef{2, 3});
        if (stacked && a.per_set) h = h.view({N, S, -1}).transpose(0, 1);
        a.image = false;
        break;
      }
      case NetOp::Flatten: {
        h = stacked && a.per_set ? h.reshape({N, S, -1}).transpose(0, 1) : h.flatten(1);
        a.image = false;
        break;
      }
    }
    if (trace && !op_trace) {
      trace->inputs.push_back(torch::Tensor());
      trace->outputs.push_back(a.h);
    }
    if (op.weight_block >= 0 && !shared_op) a.per_set = true;
  }
  if (stacked && !a.per_set) return per_set_copy(a, S);
  return a.h;
}

torch::Tensor NetworkModel::forward(const torch::Tensor& x, const torch::Tensor& theta, ForwardTrace* trace) const {
  return run(x, theta, ops_.size(), trace);
}

torch::Tensor NetworkModel::features(const torch::Tensor& x, const torch::Tensor& theta) const {
  return run(x, theta, ops_.size() - 1, nullptr);
}

LastLayer NetworkModel::last_layer() const {
  const auto& op = ops_.back();
  return {op.weight_block, op.bias_block, op.in, op.out};
}

torch::Tensor NetworkModel::forward_dropout(const torch::Tensor& x, const torch::Tensor& theta, double p, uint64_t key,
                                            int64_t row_offset, int64_t total_rows) const {
  const int64_t rows = theta.dim() == 2 && x.dim() == 5 ? x.size(1) : x.size(0);
  auto dropout = DropoutMasks::checked(p, key, row_offset, rows, total_rows);
  return run(x, theta, ops_.size(), nullptr, &dropout);
}

std::vector<std::string> NetworkModel::dropout_blocks() const {
  return {layout_.blocks[ops_.back().weight_block].name};
}

const Capability* NetworkModel::find_capability(const std::type_info& type) const {
  if (type == typeid(LastLayerAccess)) return static_cast<const LastLayerAccess*>(this);
  if (type == typeid(DropoutForward)) return static_cast<const DropoutForward*>(this);
  if (type == typeid(Architecture)) return static_cast<const Architecture*>(this);
  if (type == typeid(BlockForward)) return static_cast<const BlockForward*>(this);
  if (type == typeid(TokenInputs) && ops_.front().kind == NetOp::Embed) return static_cast<const TokenInputs*>(this);
  return nullptr;
}

namespace {
const std::vector<std::pair<NetOp::Kind, const char*>>& op_names() {
  static const std::vector<std::pair<NetOp::Kind, const char*>> names = {
      {NetOp::Conv, "conv"},         {NetOp::Linear, "linear"},       {NetOp::GroupNorm, "group_norm"},
      {NetOp::LayerNorm, "layer_norm"}, {NetOp::PosEmbed, "pos_embed"}, {NetOp::ReLU, "relu"},
      {NetOp::GELU, "gelu"},         {NetOp::Save, "save"},           {NetOp::Add, "add"},
      {NetOp::Swap, "swap"},         {NetOp::Attention, "attention"}, {NetOp::ToTokens, "to_tokens"},
      {NetOp::MeanTokens, "mean_tokens"}, {NetOp::GlobalPool, "global_pool"}, {NetOp::Flatten, "flatten"},
      {NetOp::ChannelAffine, "channel_affine"}, {NetOp::MaxPool, "max_pool"}, {NetOp::Embed, "embed"}};
  return names;
}
}  // namespace

NetOp net_op(NetOp::Kind kind, std::string name, int64_t in, int64_t out) {
  NetOp o;
  o.kind = kind;
  o.name = std::move(name);
  o.in = in;
  o.out = out;
  return o;
}

NetOp net_conv(std::string name, int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t padding) {
  NetOp o = net_op(NetOp::Conv, std::move(name), in, out);
  o.kernel = kernel;
  o.stride = stride;
  o.padding = padding;
  return o;
}

NetOp net_norm(NetOp::Kind kind, std::string name, int64_t channels, int64_t groups) {
  NetOp o = net_op(kind, std::move(name), channels, channels);
  o.groups = groups;
  return o;
}

std::string NetworkModel::architecture() const {
  nlohmann::json ops = nlohmann::json::array();
  for (const auto& op : ops_) {
    std::string kind;
    for (const auto& [k, name] : op_names())
      if (k == op.kind) kind = name;
    ops.push_back({{"op", kind}, {"name", op.name}, {"in", op.in}, {"out", op.out}, {"kernel", op.kernel},
                   {"stride", op.stride}, {"padding", op.padding}, {"groups", op.groups}, {"slot", op.slot},
                   {"bias", op.bias}, {"scale", op.scale}, {"zero_init", op.zero_init}});
  }
  return nlohmann::json{{"input_shape", input_shape_}, {"output_dim", output_dim()}, {"ops", ops}}.dump();
}

std::shared_ptr<Model> make_network(const std::string& spec, const std::vector<int64_t>& input_shape,
                                    std::vector<NetOp> ops, torch::Dtype dtype, torch::Device device) {
  auto model = std::make_shared<NetworkModel>(spec, input_shape, std::move(ops), dtype, device);
  // One example through the ops finds widths that do not chain before any training.
  std::vector<int64_t> shape = {1};
  shape.insert(shape.end(), input_shape.begin(), input_shape.end());
  try {
    at::NoGradGuard no_grad;
    model->forward(at::zeros(shape, at::TensorOptions().dtype(dtype).device(device)), model->init_params(0), nullptr);
  } catch (const c10::Error& e) {
    throw InvalidArgument(fmt::format("network '{}': its ops do not fit together on inputs [{}]: {}", spec,
                                      fmt::join(input_shape, ", "), e.what_without_backtrace()));
  }
  return model;
}

NetworkDescription parse_architecture(const std::string& spec, const std::string& text) {
  try {
    auto j = nlohmann::json::parse(text);
    NetworkDescription d;
    for (const auto& o : j.at("ops")) {
      NetOp op;
      const auto kind = o.at("op").get<std::string>();
      bool known = false;
      for (const auto& [k, name] : op_names())
        if (kind == name) {
          op.kind = k;
          known = true;
        }
      if (!known) throw InvalidArgument(fmt::format("network '{}': unknown op '{}'", spec, kind));
      op.name = o.at("name").get<std::string>();
      op.in = o.at("in").get<int64_t>();
      op.out = o.at("out").get<int64_t>();
      op.kernel = o.at("kernel").get<int64_t>();
      op.stride = o.at("stride").get<int64_t>();
      op.padding = o.at("padding").get<int64_t>();
      op.groups = o.at("groups").get<int64_t>();
      op.slot = o.at("slot").get<int>();
      op.bias = o.value("bias", true);  // files written before adapters lack the three
      op.scale = o.value("scale", 1.0);
      op.zero_init = o.value("zero_init", false);
      d.ops.push_back(op);
    }
    d.input_shape = j.at("input_shape").get<std::vector<int64_t>>();
    return d;
  } catch (const nlohmann::json::exception& e) {
    throw IoError(fmt::format("network '{}': unreadable architecture ({})", spec, e.what()));
  }
}

std::shared_ptr<Model> network_from_architecture(const std::string& spec, const std::string& text,
                                                 torch::Dtype dtype, torch::Device device) {
  auto d = parse_architecture(spec, text);
  return make_network(spec, d.input_shape, d.ops, dtype, device);
}

}  // namespace credence
