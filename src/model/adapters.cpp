// Low-rank adapters as op-list rewriting: each adapted op runs beside a low-rank path whose
// output is added to its own, so curvature, stacking and saving need nothing new.
#include "credence/model/adapters.h"

#include <ATen/ATen.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <map>

#include "credence/core/error.h"
#include "credence/core/spec.h"
#include "credence/model/frozen.h"
#include "credence/model/network.h"
#include "credence/model/weights.h"

namespace credence {
namespace {

NetworkDescription describe_network(const Model& model, const char* what) {
  const auto* arch = model.find<Architecture>();
  if (!arch || model.find<FrozenParameters>())
    throw NotSupported(fmt::format(
        "{} need a network built from credence's op list without frozen parameters (resnet:, transformer:, or "
        "make_network in code); model '{}' is not one",
        what, model.spec()));
  return parse_architecture(model.spec(), arch->architecture());
}

bool adaptable(const NetworkDescription& d, size_t i) {
  const auto kind = d.ops[i].kind;
  return (kind == NetOp::Conv || kind == NetOp::Linear) && i + 1 < d.ops.size();
}

std::string describe_op(const NetOp& op) {
  if (op.kind == NetOp::Linear) return fmt::format("{} (linear {} -> {})", op.name, op.in, op.out);
  return fmt::format("{} (conv {} -> {}, {}x{})", op.name, op.in, op.out, op.kernel, op.kernel);
}

bool matches(const std::string& name, const std::string& pattern) {
  return pattern == "all" || name == pattern || name.rfind(pattern + ".", 0) == 0;
}

}  // namespace

const std::vector<Field>& lora_fields() {
  static const std::vector<Field> fields = {
      {"rank", FieldType::Int, "4", "rank of each adapter (A is [rank, in], B is [out, rank])", {}},
      {"alpha", FieldType::Double, "8", "the low-rank path is scaled by alpha / rank", {}},
      {"targets", FieldType::String, "all",
       "layers to adapt: 'all' (every conv and linear layer before the head) or comma-separated names or dotted "
       "prefixes (e.g. stage3,blocks.1.attn)", {}},
      {"head", FieldType::Choice, "train",
       "the final linear layer: trained in full, trained from a fresh draw (new: a task with other classes; "
       "--init's head is not read), or frozen with the backbone",
       {"train", "new", "frozen"}},
      {"a", FieldType::Choice, "train",
       "the A factors: trained, or frozen at their random draw (LoRA-FA: the network is then linear in B)",
       {"train", "frozen"}},
  };
  return fields;
}

std::vector<std::string> adaptable_layers(const Model& model) {
  auto d = describe_network(model, "adapters");
  std::vector<std::string> names;
  for (size_t i = 0; i < d.ops.size(); ++i)
    if (adaptable(d, i)) names.push_back(describe_op(d.ops[i]));
  return names;
}

namespace {
Options lora_options(const std::string& text) {
  auto parsed = MethodSpec::parse(text);
  if (parsed.name != "lora")
    throw InvalidArgument(fmt::format("--adapters '{}': unknown adapter kind '{}' (known: lora, e.g. "
                                      "'lora:rank=4,alpha=8')",
                                      text, parsed.name));
  return Options("adapters lora", lora_fields(), parsed.values);
}
}  // namespace

bool draws_new_head(const std::string& spec) {
  return !spec.empty() && lora_options(spec).get_string("head") == "new";
}

std::shared_ptr<Model> add_adapters(std::shared_ptr<Model> backbone, const std::string& text, uint64_t seed) {
  const Options options = lora_options(text);
  const long rank = options.get_int("rank");
  const double alpha = options.get_double("alpha");
  if (rank < 1) throw InvalidArgument(fmt::format("--adapters '{}': rank must be >= 1, got {}", text, rank));
  if (!(alpha > 0)) throw InvalidArgument(fmt::format("--adapters '{}': alpha must be > 0, got {}", text, alpha));
  const bool train_head = options.get_string("head") != "frozen";
  const bool train_a = options.get_string("a") == "train";

  auto d = describe_network(*backbone, "--adapters");
  std::vector<std::string> targets;
  for (const auto& t : split(options.get_string("targets"), ','))
    if (!trim(t).empty()) targets.push_back(trim(t));
  std::vector<std::string> names;
  for (size_t i = 0; i < d.ops.size(); ++i)
    if (adaptable(d, i)) names.push_back(d.ops[i].name);
  if (names.empty())
    throw InvalidArgument(fmt::format("model '{}' has no convolutional or linear layer before its head to adapt",
                                      backbone->spec()));
  for (const auto& t : targets) {
    if (std::none_of(names.begin(), names.end(), [&](const std::string& n) { return matches(n, t); }))
      throw InvalidArgument(fmt::format("--adapters '{}': target '{}' matches no adaptable layer of model '{}' "
                                        "(adaptable: {}; `credence describe --adapters --model SPEC` lists them)",
                                        text, t, backbone->spec(), fmt::join(names, ", ")));
  }

  int slot = 0;
  for (const auto& op : d.ops) slot = std::max(slot, op.slot + 1);
  std::vector<NetOp> ops;
  for (size_t i = 0; i < d.ops.size(); ++i) {
    const NetOp& op = d.ops[i];
    const bool adapt = adaptable(d, i) && std::any_of(targets.begin(), targets.end(),
                                                      [&](const std::string& t) { return matches(op.name, t); });
    if (!adapt) {
      ops.push_back(op);
      continue;
    }
    NetOp save = net_op(NetOp::Save), swap = net_op(NetOp::Swap), add = net_op(NetOp::Add);
    save.slot = swap.slot = add.slot = slot;
    NetOp a = op.kind == NetOp::Conv ? net_conv(op.name + ".lora_A", op.in, rank, op.kernel, op.stride, op.padding)
                                     : net_op(NetOp::Linear, op.name + ".lora_A", op.in, rank);
    NetOp b = op.kind == NetOp::Conv ? net_conv(op.name + ".lora_B", rank, op.out, 1)
                                     : net_op(NetOp::Linear, op.name + ".lora_B", rank, op.out);
    a.bias = b.bias = false;
    b.scale = alpha / static_cast<double>(rank);
    b.zero_init = true;
    for (const NetOp& o : {save, op, swap, a, b, add}) ops.push_back(o);
  }
  auto adapted = make_network(fmt::format("{} + {}", backbone->spec(), text), d.input_shape, ops, backbone->dtype(),
                              backbone->device());

  // Backbone weights by name; the adapter factors are drawn per seed.
  std::map<std::string, torch::Tensor> weights;
  for (auto& [name, w] : named_weights(*backbone, backbone->init_params(seed))) weights[name] = w;
  auto theta = adapted->init_params(seed);
  std::vector<int> seeded;
  std::vector<std::string> frozen;
  const auto& blocks = adapted->layout().blocks;
  const std::string head_name = d.ops.back().name;
  for (size_t b = 0; b < blocks.size(); ++b) {
    const auto& block = blocks[b];
    auto it = weights.find(block.name);
    if (it == weights.end()) {  // an adapter factor
      seeded.push_back(static_cast<int>(b));
      if (!train_a && block.name.find(".lora_A.") != std::string::npos) frozen.push_back(block.name);
      continue;
    }
    theta.narrow(0, block.offset, block.numel).copy_(it->second.reshape({-1}));
    if (!train_head || block.name.rfind(head_name + ".", 0) != 0) frozen.push_back(block.name);
  }
  auto initialized = with_initial_weights(adapted, theta, seeded);
  return freeze_parameters(initialized, fmt::format("{}", fmt::join(frozen, ",")), initialized->init_params(seed));
}

NamedWeights merge_adapters(const std::string& architecture, NamedWeights weights) {
  auto d = parse_architecture("adapted", architecture);
  std::map<std::string, torch::Tensor> by_name(weights.begin(), weights.end());
  for (const auto& op : d.ops) {
    const std::string suffix = ".lora_B";
    if (op.name.size() <= suffix.size() || op.name.compare(op.name.size() - suffix.size(), suffix.size(), suffix) != 0)
      continue;
    const std::string layer = op.name.substr(0, op.name.size() - suffix.size());
    auto B = by_name.at(op.name + ".weight"), A = by_name.at(layer + ".lora_A.weight");
    auto& W = by_name.at(layer + ".weight");
    W = W + (op.scale * B.reshape({B.size(0), -1}).mm(A.reshape({A.size(0), -1}))).view_as(W);
  }
  NamedWeights out;
  for (const auto& [name, w] : weights)
    if (name.find(".lora_A.") == std::string::npos && name.find(".lora_B.") == std::string::npos)
      out.emplace_back(name, by_name.at(name));
  return out;
}

}  // namespace credence
