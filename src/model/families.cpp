// The resnet and transformer families as NetworkModel op lists.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "credence/core/error.h"
#include "credence/core/spec.h"
#include "credence/model/network.h"

namespace credence {
namespace {

long positive_option(const Spec& spec, const std::string& key, long fallback) {
  long v = spec.has(key) ? parse_int(spec.get(key, ""), fmt::format("model '{}' option {}", spec.text, key)) : fallback;
  if (v < 1) throw InvalidArgument(fmt::format("model '{}': {} must be >= 1, got {}", spec.text, key, v));
  return v;
}

void require_images(const std::string& text, const std::vector<int64_t>& input_shape, int64_t min_side) {
  if (input_shape.size() != 3 || input_shape[1] < min_side || input_shape[2] < min_side)
    throw InvalidArgument(fmt::format(
        "model '{}' needs image inputs [C, H, W] of at least {}x{}; this data has shape [{}] (use mlp:...)", text,
        min_side, min_side, fmt::join(input_shape, ", ")));
}


}  // namespace

std::shared_ptr<Model> make_resnet(const std::string& text, const std::vector<int64_t>& input_shape,
                                   int64_t output_dim, torch::Dtype dtype, torch::Device device) {
  Spec spec = Spec::parse(text);
  long depth = parse_int(spec.body, fmt::format("model '{}' depth", text));
  if (depth < 8 || (depth - 2) % 6 != 0)
    throw InvalidArgument(fmt::format("model '{}': depth must be 6n + 2 with n >= 1 (8, 14, 20, ...), got {}", text, depth));
  const long width = positive_option(spec, "width", 16), groups = positive_option(spec, "groups", 4);
  if (width % groups != 0)
    throw InvalidArgument(fmt::format("model '{}': width {} must be a multiple of groups {}", text, width, groups));
  require_images(text, input_shape, 8);
  const long blocks = (depth - 2) / 6;
  std::vector<NetOp> ops = {net_conv("stem", input_shape[0], width, 3, 1, 1)};
  int64_t channels = width;
  for (int stage = 0; stage < 3; ++stage) {
    const int64_t out = width << stage;
    for (long b = 0; b < blocks; ++b) {
      const std::string p = fmt::format("stage{}.{}.", stage + 1, b);
      const int64_t stride = stage > 0 && b == 0 ? 2 : 1;
      const bool project = stride != 1 || channels != out;
      // Pre-activation block: x + conv2(relu(norm2(conv1(relu(norm1(x)))))); a projection shortcut
      // takes the pre-activated input.
      if (!project) ops.push_back(net_op(NetOp::Save));
      ops.push_back(net_norm(NetOp::GroupNorm, p + "norm1", channels, groups));
      ops.push_back(net_op(NetOp::ReLU));
      if (project) ops.push_back(net_op(NetOp::Save));
      ops.push_back(net_conv(p + "conv1", channels, out, 3, stride, 1));
      ops.push_back(net_norm(NetOp::GroupNorm, p + "norm2", out, groups));
      ops.push_back(net_op(NetOp::ReLU));
      ops.push_back(net_conv(p + "conv2", out, out, 3, 1, 1));
      if (project) {
        ops.push_back(net_op(NetOp::Swap));
        ops.push_back(net_conv(p + "shortcut", channels, out, 1, stride, 0));
      }
      ops.push_back(net_op(NetOp::Add));
      channels = out;
    }
  }
  ops.push_back(net_norm(NetOp::GroupNorm, "norm", channels, groups));
  ops.push_back(net_op(NetOp::ReLU));
  ops.push_back(net_op(NetOp::GlobalPool));
  ops.push_back(net_op(NetOp::Linear, "head", channels, output_dim));
  return std::make_shared<NetworkModel>(text, input_shape, ops, dtype, device);
}

std::shared_ptr<Model> make_transformer(const std::string& text, const std::vector<int64_t>& input_shape,
                                        int64_t output_dim, torch::Dtype dtype, torch::Device device) {
  Spec spec = Spec::parse(text);
  long layers = parse_int(spec.body, fmt::format("model '{}' layers", text));
  if (layers < 1) throw InvalidArgument(fmt::format("model '{}': layers must be >= 1, got {}", text, layers));
  const long dim = positive_option(spec, "dim", 64), heads = positive_option(spec, "heads", 4),
             patch = positive_option(spec, "patch", 7), ratio = positive_option(spec, "mlp", 2);
  if (dim % heads != 0)
    throw InvalidArgument(fmt::format("model '{}': dim {} must be a multiple of heads {}", text, dim, heads));
  std::vector<NetOp> ops;
  int64_t tokens = 0;
  if (input_shape.size() == 1) {  // a sequence of token ids
    if (!spec.has("vocab"))
      throw InvalidArgument(fmt::format("model '{}' on sequences [{}] needs vocab=V, the number of token ids (e.g. "
                                        "'{}?vocab=100')",
                                        text, input_shape[0], text));
    if (spec.has("patch"))
      throw InvalidArgument(fmt::format("model '{}': patch= applies to images; these inputs are token sequences", text));
    tokens = input_shape[0];
    ops.push_back(net_op(NetOp::Embed, "embed", positive_option(spec, "vocab", 1), dim));
  } else {
    if (spec.has("vocab"))
      throw InvalidArgument(fmt::format("model '{}': vocab= applies to token sequences; these inputs are images [{}]",
                                        text, fmt::join(input_shape, ", ")));
    require_images(text, input_shape, 1);
    if (input_shape[1] % patch != 0 || input_shape[2] % patch != 0)
      throw InvalidArgument(fmt::format("model '{}': patch {} must divide the image size {}x{} (set ?patch=)", text,
                                        patch, input_shape[1], input_shape[2]));
    tokens = (input_shape[1] / patch) * (input_shape[2] / patch);
    ops.push_back(net_conv("patch", input_shape[0], dim, patch, patch, 0));
    NetOp to_tokens = net_op(NetOp::ToTokens);
    to_tokens.out = dim;
    ops.push_back(to_tokens);
  }
  NetOp pos = net_op(NetOp::PosEmbed, "pos_embed", dim, dim);
  pos.groups = tokens;
  ops.push_back(pos);
  for (long l = 0; l < layers; ++l) {
    const std::string p = fmt::format("blocks.{}.", l);
    NetOp attention = net_op(NetOp::Attention, "", 3 * dim, dim);
    attention.groups = heads;
    for (const NetOp& o : {net_op(NetOp::Save), net_norm(NetOp::LayerNorm, p + "norm1", dim),
                           net_op(NetOp::Linear, p + "attn.qkv", dim, 3 * dim), attention,
                           net_op(NetOp::Linear, p + "attn.proj", dim, dim), net_op(NetOp::Add),
                           net_op(NetOp::Save), net_norm(NetOp::LayerNorm, p + "norm2", dim),
                           net_op(NetOp::Linear, p + "mlp.fc1", dim, ratio * dim), net_op(NetOp::GELU),
                           net_op(NetOp::Linear, p + "mlp.fc2", ratio * dim, dim), net_op(NetOp::Add)})
      ops.push_back(o);
  }
  ops.push_back(net_norm(NetOp::LayerNorm, "norm", dim));
  ops.push_back(net_op(NetOp::MeanTokens));
  ops.push_back(net_op(NetOp::Linear, "head", dim, output_dim));
  return std::make_shared<NetworkModel>(text, input_shape, ops, dtype, device);
}

}  // namespace credence
