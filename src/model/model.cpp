#include "credence/model/model.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <set>

#include "credence/core/error.h"
#include "credence/core/spec.h"
#include "credence/model/network.h"
#include "sequential.h"

namespace credence {

int64_t check_blocks(const ParamLayout& layout, const std::string& spec, const std::vector<torch::Tensor>& blocks) {
  const auto& expected = layout.blocks;
  if (blocks.size() != expected.size())
    throw InvalidArgument(fmt::format("model '{}' has {} parameter blocks, got {}", spec, expected.size(), blocks.size()));
  const int64_t dims = blocks.empty() ? 1 : blocks.front().dim();
  for (size_t i = 0; i < blocks.size(); ++i)
    if (blocks[i].dim() != dims || (dims != 1 && dims != 2) || blocks[i].size(-1) != expected[i].numel ||
        (dims == 2 && blocks[i].size(0) != blocks.front().size(0)))
      throw InvalidArgument(fmt::format("model '{}': block {} ({}) must be [{}] or [S, {}] like the others", spec, i,
                                        expected[i].name, expected[i].numel, expected[i].numel));
  return dims;
}

std::vector<int64_t> ParamLayout::numels() const {
  std::vector<int64_t> out;
  for (const auto& b : blocks) out.push_back(b.numel);
  return out;
}

std::vector<int64_t> ParamBlock::torch_shape() const {
  return transposed ? std::vector<int64_t>(shape.rbegin(), shape.rend()) : shape;
}

torch::Tensor ParamBlock::to_torch(const torch::Tensor& entries) const {
  auto t = entries.view(shape);
  return transposed ? t.t() : t;
}

torch::Tensor ParamBlock::from_torch(const torch::Tensor& tensor) const {
  return (transposed ? tensor.t() : tensor).reshape({-1});
}

const ParamBlock& ParamLayout::find(const std::string& name) const {
  for (const auto& b : blocks)
    if (b.name == name) return b;
  throw InvalidArgument(fmt::format("model has no parameter named '{}'", name));
}

void Model::throw_missing(const std::string& who, const char* name, const char* hint) const {
  throw NotSupported(fmt::format("{} needs {}, which model '{}' lacks ({})", who, name, spec(), hint));
}

std::string Model::fingerprint() const {
  std::string text = spec() + "|in";
  for (auto s : input_shape()) text += fmt::format(",{}", s);
  text += fmt::format("|out{}", output_dim());
  for (const auto& b : layout().blocks) text += fmt::format("|{}:{}", b.name, fmt::join(b.shape, "x"));
  // FNV-1a: stable across standard libraries, unlike std::hash, so files move between builds.
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : text) h = (h ^ c) * 0x100000001b3ULL;
  return fmt::format("{:016x}", h);
}

std::shared_ptr<Model> make_mlp(const std::string& text, const std::vector<int64_t>& input_shape,
                                int64_t output_dim, torch::Dtype dtype, torch::Device device) {
  Spec spec = Spec::parse(text);
  std::string act = spec.get("act", "relu");
  if (act != "relu" && act != "tanh")
    throw InvalidArgument(fmt::format("model '{}': act must be relu or tanh, got '{}'", text, act));
  int64_t in = 1;
  for (auto s : input_shape) in *= s;
  std::vector<LayerDef> layers;
  if (!spec.body.empty()) {
    for (const auto& piece : split(spec.body, ',')) {
      long width = parse_int(piece, fmt::format("model '{}' hidden width", text));
      if (width < 1)
        throw InvalidArgument(fmt::format("model '{}': hidden width must be >= 1, got {}", text, width));
      layers.push_back({LayerDef::Linear, in, width});
      layers.push_back({act == "relu" ? LayerDef::ReLU : LayerDef::Tanh});
      in = width;
    }
  }
  layers.push_back({LayerDef::Linear, in, output_dim});
  return std::make_shared<SequentialModel>(text, input_shape, layers, dtype, device);
}

std::shared_ptr<Model> make_cnn(const std::string& text, const std::vector<int64_t>& input_shape,
                                int64_t output_dim, torch::Dtype dtype, torch::Device device) {
  Spec spec = Spec::parse(text);
  if (spec.body != "lenet")
    throw InvalidArgument(fmt::format("model '{}': unknown CNN '{}' (known: lenet)", text, spec.body));
  if (input_shape.size() != 3 || input_shape[1] < 12 || input_shape[2] < 12)
    throw InvalidArgument(fmt::format(
        "model '{}' needs image inputs [C, H, W] of at least 12x12; this data has shape [{}] (use mlp:...)",
        text, fmt::join(input_shape, ", ")));
  int64_t c = input_shape[0], h = input_shape[1], w = input_shape[2];
  // conv5 (same padding) -> pool -> conv5 (valid) -> pool
  int64_t h2 = (h / 2 - 4) / 2, w2 = (w / 2 - 4) / 2;
  std::vector<LayerDef> layers = {
      {LayerDef::Conv, c, 6, 5, 2},  {LayerDef::ReLU}, {LayerDef::MaxPool},
      {LayerDef::Conv, 6, 16, 5, 0}, {LayerDef::ReLU}, {LayerDef::MaxPool},
      {LayerDef::Flatten},
      {LayerDef::Linear, 16 * h2 * w2, 120}, {LayerDef::ReLU},
      {LayerDef::Linear, 120, 84},   {LayerDef::ReLU},
      {LayerDef::Linear, 84, output_dim}};
  return std::make_shared<SequentialModel>(text, input_shape, layers, dtype, device);
}

const std::vector<ModelFamily>& model_registry() {
  static const std::vector<ModelFamily> registry = {
      {"mlp", "mlp:H1,H2,...[?act=relu|tanh]",
       "fully connected network (mlp: alone is a linear model); every capability", {{"act", "relu or tanh"}},
       make_mlp},
      {"cnn", "cnn:lenet", "LeNet-style convolutional network for [C, H, W] images (at least 12x12)", {}, make_cnn},
      {"resnet", "resnet:DEPTH[?width=16&groups=4]",
       "pre-activation ResNet (3 stages, GroupNorm) for [C, H, W] images; DEPTH = 6n + 2: 8, 14, 20, ...",
       {{"width", "channels of the first stage (doubled at each of the next two)"},
        {"groups", "GroupNorm groups (must divide width)"}},
       make_resnet},
      {"transformer", "transformer:LAYERS[?dim=64&heads=4&patch=7&mlp=2|vocab=V]",
       "encoder (pre-LayerNorm, mean-pooled tokens) over the patches of [C, H, W] images (ViT-style), or over "
       "sequences of token ids [T] with vocab=V",
       {{"dim", "token width"}, {"heads", "attention heads (must divide dim)"},
        {"patch", "patch side (must divide the image sides)"}, {"mlp", "hidden width of each MLP, as a multiple of dim"},
        {"vocab", "token sequences only: ids are whole numbers in [0, vocab)"}},
       make_transformer},
      {"torchscript", "torchscript:PATH",
       "a module saved from PyTorch with torch.jit.save, with its weights; last-layer methods need its "
       "features(x)",
       {}, make_torchscript},
  };
  return registry;
}

const ModelFamily& find_model_family(const std::string& name) {
  for (const auto& f : model_registry())
    if (f.name == name) return f;
  std::vector<std::string> known;
  for (const auto& f : model_registry()) known.push_back(f.usage);
  throw InvalidArgument(fmt::format("unknown model family '{}' (known: {}; `credence describe --models`)", name,
                                    fmt::join(known, ", ")));
}

std::shared_ptr<Model> make_model(const std::string& text, const std::vector<int64_t>& input_shape,
                                  int64_t output_dim, torch::Dtype dtype, torch::Device device) {
  if (output_dim < 1) throw InvalidArgument(fmt::format("model output size must be >= 1, got {}", output_dim));
  Spec spec = Spec::parse(text);
  const ModelFamily* family = nullptr;
  try {
    family = &find_model_family(spec.scheme);
  } catch (const InvalidArgument& e) {
    throw InvalidArgument(fmt::format("model '{}': {}", text, e.what()));
  }
  std::set<std::string> keys;
  for (const auto& [key, help] : family->options) keys.insert(key);
  spec.check_keys(keys, false);
  return family->make(text, input_shape, output_dim, dtype, device);
}

}  // namespace credence
