// The resnet and transformer families: functional forward and its gradient against LibTorch's own
// modules (float64), stacked evaluation against single passes, features, dropout and spec checks.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include <cmath>
#include <functional>
#include <map>

#include "credence/core/error.h"
#include "credence/model/model.h"

namespace credence {
namespace {

const auto kF64 = at::TensorOptions().dtype(at::kDouble);

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  EXPECT_EQ(a.sizes(), b.sizes());
  return (a - b).abs().max().item<double>();
}

// Module parameters made from a model's named blocks; gradients are read back by name.
struct Weights {
  const Model& model;
  torch::Tensor theta;
  std::map<std::string, torch::Tensor> leaves;
  torch::Tensor get(const std::string& name) {
    if (!leaves.count(name)) {
      const auto& b = model.layout().find(name);
      leaves[name] = b.to_torch(theta.narrow(0, b.offset, b.numel)).detach().clone().requires_grad_(true);
    }
    return leaves[name];
  }
  template <class M>
  void load(M& module, const std::string& prefix) {
    for (auto& p : module->named_parameters()) p.value().set_data(get(prefix + "." + p.key()).detach());
    // set_data keeps the module's own leaves; remember them so their gradients can be compared
    for (auto& p : module->named_parameters()) leaves[prefix + "." + p.key()] = p.value();
  }
  // The gradient of every block, in theta's layout.
  torch::Tensor flat_grad() {
    std::vector<torch::Tensor> parts;
    for (const auto& b : model.layout().blocks) parts.push_back(b.from_torch(leaves.at(b.name).grad()));
    return at::cat(parts);
  }
};

torch::Tensor reference_resnet8(Weights& w, const torch::Tensor& x, int64_t width, int64_t groups) {
  namespace nn = torch::nn;
  auto conv = [&](const std::string& name, int64_t in, int64_t out, int64_t k, int64_t stride, int64_t pad) {
    nn::Conv2d c(nn::Conv2dOptions(in, out, k).stride(stride).padding(pad));
    c->to(at::kDouble);
    w.load(c, name);
    return c;
  };
  auto gn = [&](const std::string& name, int64_t channels) {
    nn::GroupNorm g(nn::GroupNormOptions(groups, channels));
    g->to(at::kDouble);
    w.load(g, name);
    return g;
  };
  auto h = conv("stem", x.size(1), width, 3, 1, 1)->forward(x);
  int64_t in = width;
  for (int stage = 0; stage < 3; ++stage) {
    const int64_t out = width << stage, stride = stage > 0 ? 2 : 1;
    const std::string p = "stage" + std::to_string(stage + 1) + ".0.";
    auto pre = at::relu(gn(p + "norm1", in)->forward(h));
    auto branch = conv(p + "conv1", in, out, 3, stride, 1)->forward(pre);
    branch = conv(p + "conv2", out, out, 3, 1, 1)->forward(at::relu(gn(p + "norm2", out)->forward(branch)));
    auto shortcut = stage == 0 ? h : conv(p + "shortcut", in, out, 1, stride, 0)->forward(pre);
    h = branch + shortcut;
    in = out;
  }
  h = at::relu(gn("norm", in)->forward(h)).mean({2, 3});
  nn::Linear head(in, w.model.output_dim());
  head->to(at::kDouble);
  w.load(head, "head");
  return head->forward(h);
}

// The encoder after its token embedding: tokens [N, T, D] to outputs.
torch::Tensor reference_encoder(Weights& w, torch::Tensor h, int64_t layers, int64_t dim, int64_t heads) {
  namespace nn = torch::nn;
  h = h + w.get("pos_embed");
  auto layer_norm = [&](const std::string& name) {
    nn::LayerNorm ln(nn::LayerNormOptions({dim}));
    ln->to(at::kDouble);
    w.load(ln, name);
    return ln;
  };
  auto linear = [&](const std::string& name, int64_t in, int64_t out) {
    nn::Linear l(in, out);
    l->to(at::kDouble);
    w.load(l, name);
    return l;
  };
  for (int64_t l = 0; l < layers; ++l) {
    const std::string p = "blocks." + std::to_string(l) + ".";
    nn::MultiheadAttention attention(nn::MultiheadAttentionOptions(dim, heads));
    attention->to(at::kDouble);
    attention->in_proj_weight.set_data(w.get(p + "attn.qkv.weight").detach());
    attention->in_proj_bias.set_data(w.get(p + "attn.qkv.bias").detach());
    w.leaves[p + "attn.qkv.weight"] = attention->in_proj_weight;
    w.leaves[p + "attn.qkv.bias"] = attention->in_proj_bias;
    attention->out_proj->weight.set_data(w.get(p + "attn.proj.weight").detach());
    attention->out_proj->bias.set_data(w.get(p + "attn.proj.bias").detach());
    w.leaves[p + "attn.proj.weight"] = attention->out_proj->weight;
    w.leaves[p + "attn.proj.bias"] = attention->out_proj->bias;
    auto q = layer_norm(p + "norm1")->forward(h).transpose(0, 1);  // MultiheadAttention takes [T, N, D]
    h = h + std::get<0>(attention->forward(q, q, q)).transpose(0, 1);
    auto m = linear(p + "mlp.fc1", dim, 2 * dim)->forward(layer_norm(p + "norm2")->forward(h));
    h = h + linear(p + "mlp.fc2", 2 * dim, dim)->forward(nn::GELU()->forward(m));
  }
  return linear("head", dim, w.model.output_dim())->forward(layer_norm("norm")->forward(h).mean(1));
}

torch::Tensor reference_transformer(Weights& w, const torch::Tensor& x, int64_t layers, int64_t dim, int64_t heads,
                                    int64_t patch) {
  namespace nn = torch::nn;
  nn::Conv2d embed(nn::Conv2dOptions(x.size(1), dim, patch).stride(patch));
  embed->to(at::kDouble);
  w.load(embed, "patch");
  return reference_encoder(w, embed->forward(x).flatten(2).transpose(1, 2), layers, dim, heads);
}

// Over token ids: nn::Embedding reads the ids as int64; credence takes them as whole-number floats.
torch::Tensor reference_token_transformer(Weights& w, const torch::Tensor& ids, int64_t layers, int64_t vocab,
                                          int64_t dim, int64_t heads) {
  namespace nn = torch::nn;
  nn::Embedding embed(vocab, dim);
  embed->to(at::kDouble);
  w.load(embed, "embed");
  return reference_encoder(w, embed->forward(ids.to(at::kLong)), layers, dim, heads);
}

torch::Tensor token_ids(std::vector<int64_t> shape, int64_t vocab) {
  return at::randint(vocab, shape, at::TensorOptions().dtype(at::kLong)).to(at::kDouble);
}

// Forward and the gradient of sum(out * r) agree with the module-built reference.
void expect_matches_modules(const Model& m, const torch::Tensor& x,
                            const std::function<torch::Tensor(Weights&, const torch::Tensor&)>& reference) {
  // Perturbed so that normalization scales and shifts are away from their initial 1 and 0.
  auto theta = (m.init_params(3) + 0.1 * at::randn({m.layout().size}, kF64)).requires_grad_(true);
  auto out = m.forward(x, theta);
  Weights w{m, theta.detach()};
  auto ref = reference(w, x);
  EXPECT_LT(max_abs_diff(out, ref), 1e-10);
  auto r = at::randn(out.sizes(), kF64);
  auto grad = torch::autograd::grad({(out * r).sum()}, {theta})[0];
  (ref * r).sum().backward();
  EXPECT_LT(max_abs_diff(grad, w.flat_grad()), 1e-10);
}

TEST(ResNet, ForwardAndGradientMatchLibTorchModules) {
  at::manual_seed(0);
  auto m = make_model("resnet:8?width=4&groups=2", {2, 9, 9}, 3, at::kDouble);
  expect_matches_modules(*m, at::randn({5, 2, 9, 9}, kF64),
                         [](Weights& w, const torch::Tensor& x) { return reference_resnet8(w, x, 4, 2); });
}

TEST(Transformer, ForwardAndGradientMatchLibTorchModules) {
  at::manual_seed(0);
  auto m = make_model("transformer:2?dim=8&heads=2&patch=4", {1, 8, 12}, 3, at::kDouble);
  expect_matches_modules(*m, at::randn({4, 1, 8, 12}, kF64), [](Weights& w, const torch::Tensor& x) {
    return reference_transformer(w, x, 2, 8, 2, 4);
  });
}

void expect_stacked_equals_single(
    const Model& m, const std::vector<int64_t>& image,
    const std::function<torch::Tensor(std::vector<int64_t>)>& inputs = [](std::vector<int64_t> shape) {
      return at::randn(shape, kF64);
    }) {
  const int64_t S = 3, N = 4;
  std::vector<torch::Tensor> thetas;
  for (int s = 0; s < S; ++s) thetas.push_back(m.init_params(10 + s) + 0.05 * at::randn({m.layout().size}, kF64));
  auto stacked = at::stack(thetas);
  std::vector<int64_t> shape = {N};
  shape.insert(shape.end(), image.begin(), image.end());
  auto x = inputs(shape);
  auto out = m.forward(x, stacked);
  ASSERT_EQ(out.sizes(), (std::vector<int64_t>{S, N, m.output_dim()}));
  shape.insert(shape.begin(), S);
  auto per_set = inputs(shape);  // one input set per parameter vector
  auto out_per_set = m.forward(per_set, stacked);
  auto& ll = m.require<LastLayerAccess>("test");
  auto feats = ll.features(x, stacked);
  for (int s = 0; s < S; ++s) {
    EXPECT_LT(max_abs_diff(out[s], m.forward(x, thetas[s])), 1e-10);
    EXPECT_LT(max_abs_diff(out_per_set[s], m.forward(per_set[s], thetas[s])), 1e-10);
    EXPECT_LT(max_abs_diff(feats[s], ll.features(x, thetas[s])), 1e-10);
  }
  // The head applied to the features gives the outputs.
  auto last = ll.last_layer();
  const auto &wb = m.layout().blocks[last.weight_block], &bb = m.layout().blocks[last.bias_block];
  auto head = at::linear(ll.features(x, thetas[0]), thetas[0].narrow(0, wb.offset, wb.numel).view(wb.shape),
                         thetas[0].narrow(0, bb.offset, bb.numel));
  EXPECT_LT(max_abs_diff(head, out[0]), 1e-10);
}

TEST(ResNet, StackedEqualsSinglePasses) {
  expect_stacked_equals_single(*make_model("resnet:8?width=4&groups=2", {1, 8, 8}, 3, at::kDouble), {1, 8, 8});
}

TEST(Transformer, StackedEqualsSinglePasses) {
  expect_stacked_equals_single(*make_model("transformer:1?dim=8&heads=2&patch=4", {2, 8, 8}, 3, at::kDouble),
                               {2, 8, 8});
}

TEST(Transformer, TokenSequencesMatchLibTorchModules) {
  at::manual_seed(0);
  auto m = make_model("transformer:2?dim=8&heads=2&vocab=11", {6}, 3, at::kDouble);
  EXPECT_EQ(m->layout().find("embed.weight").torch_shape(), (std::vector<int64_t>{11, 8}));  // PyTorch's [vocab, dim]
  expect_matches_modules(*m, token_ids({5, 6}, 11), [](Weights& w, const torch::Tensor& x) {
    return reference_token_transformer(w, x, 2, 11, 8, 2);
  });
}

TEST(Transformer, TokenSequencesStackedEqualSinglePasses) {
  expect_stacked_equals_single(*make_model("transformer:1?dim=8&heads=2&vocab=7", {5}, 3, at::kDouble), {5},
                               [](std::vector<int64_t> shape) { return token_ids(shape, 7); });
}

TEST(Transformer, InputsThatAreNotTokenIdsAreRefused) {
  auto m = make_model("transformer:1?dim=8&heads=2&vocab=7", {4}, 3, at::kDouble);
  auto theta = m->init_params(0);
  auto expect_refused = [&](const torch::Tensor& x, const std::string& words) {
    try {
      m->forward(x, theta);
      ADD_FAILURE() << "accepted";
    } catch (const InvalidArgument& e) {
      EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
    }
  };
  expect_refused(at::full({2, 4}, 0.5, kF64), "inputs=tokens");
  expect_refused(at::full({2, 4}, 7.0, kF64), "vocab= to at least 8");
  expect_refused(at::full({2, 4}, -1.0, kF64), "token id -1");
  expect_refused(at::full({2, 4}, NAN, kF64), "fractions");
}

TEST(Network, DropoutActsOnTheHeadInputOnly) {
  auto m = make_model("resnet:8?width=4&groups=2", {1, 8, 8}, 3, at::kDouble);
  auto& d = m->require<DropoutForward>("test");
  EXPECT_EQ(d.dropout_blocks(), std::vector<std::string>{"head.weight"});
  auto theta = m->init_params(0);
  auto x = at::randn({6, 1, 8, 8}, kF64);
  EXPECT_LT(max_abs_diff(d.forward_dropout(x, theta, 0.0, 1), m->forward(x, theta)), 1e-12);
  auto a = d.forward_dropout(x, theta, 0.5, 1), b = d.forward_dropout(x, theta, 0.5, 1);
  EXPECT_LT(max_abs_diff(a, b), 1e-12);  // same key, same masks
  EXPECT_GT(max_abs_diff(a, d.forward_dropout(x, theta, 0.5, 2)), 1e-6);
  // Rows of a shard get their rows' masks of the whole batch.
  auto shard = d.forward_dropout(x.narrow(0, 2, 3), theta, 0.5, 1, 2, 6);
  EXPECT_LT(max_abs_diff(shard, a.narrow(0, 2, 3)), 1e-12);
}

TEST(Network, NamesFollowPyTorchConventions) {
  auto r = make_model("resnet:14", {1, 28, 28}, 10);
  for (const char* name : {"stem.weight", "stage1.1.conv2.bias", "stage2.0.shortcut.weight", "stage3.1.norm1.weight",
                           "norm.bias", "head.weight"})
    EXPECT_NO_THROW(r->layout().find(name)) << name;
  EXPECT_EQ(r->layout().find("stage3.0.conv1.weight").shape, (std::vector<int64_t>{64, 32, 3, 3}));
  auto t = make_model("transformer:2", {1, 28, 28}, 10);
  EXPECT_EQ(t->layout().find("pos_embed").shape, (std::vector<int64_t>{16, 64}));
  EXPECT_EQ(t->layout().find("blocks.1.attn.qkv.weight").shape, (std::vector<int64_t>{192, 64}));
  EXPECT_EQ(t->layout().find("blocks.0.mlp.fc1.weight").shape, (std::vector<int64_t>{128, 64}));
}

TEST(Network, BadSpecsAreRefusedWithTheFix) {
  auto expect_invalid = [](const std::string& spec, std::vector<int64_t> shape, const std::string& words) {
    try {
      make_model(spec, shape, 10);
      ADD_FAILURE() << spec << " was accepted";
    } catch (const InvalidArgument& e) {
      EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
    }
  };
  expect_invalid("resnet:10", {1, 28, 28}, "6n + 2");
  expect_invalid("resnet:8?width=6&groups=4", {1, 28, 28}, "multiple of groups");
  expect_invalid("resnet:8", {13}, "use mlp");
  expect_invalid("resnet:8?depth=3", {1, 28, 28}, "depth");
  expect_invalid("transformer:2?patch=5", {1, 28, 28}, "must divide");
  expect_invalid("transformer:2?dim=10&heads=4", {1, 28, 28}, "multiple of heads");
  expect_invalid("transformer:0", {1, 28, 28}, ">= 1");
  expect_invalid("transformer:2", {12}, "needs vocab=V");
  expect_invalid("transformer:2?vocab=10", {1, 28, 28}, "applies to token sequences");
  expect_invalid("transformer:2?vocab=10&patch=2", {12}, "patch= applies to images");
}

}  // namespace
}  // namespace credence
