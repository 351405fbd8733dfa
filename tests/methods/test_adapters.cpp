// Low-rank adapters: they start as the backbone, equal their merged weights, leave the backbone
// untouched by fitting, and their curvature and Laplace posterior match exact computations.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>

#include <filesystem>

#include "credence/credence.h"
#include "credence/curvature/curvature.h"
#include "credence/fit/fit.h"
#include "credence/model/adapters.h"
#include "credence/model/frozen.h"
#include "credence/model/network.h"
#include "credence/model/weights.h"
#include "credence/posterior/laplace.h"

namespace credence {
namespace {

const auto kF64 = at::TensorOptions().dtype(at::kDouble);

std::shared_ptr<Model> pretrained(const std::string& spec, std::vector<int64_t> image, int64_t classes) {
  auto model = make_model(spec, image, classes, at::kDouble);
  return with_initial_weights(model, model->init_params(3) + 0.05 * at::randn({model->layout().size}, kF64));
}

torch::Tensor images(int64_t n, std::vector<int64_t> image) {
  image.insert(image.begin(), n);
  return at::randn(image, kF64);
}

TEST(Adapters, StartExactlyAsTheBackbone) {
  at::manual_seed(0);
  for (const char* spec : {"resnet:8?width=4&groups=2", "transformer:1?dim=8&heads=2&patch=4"}) {
    auto backbone = pretrained(spec, {1, 8, 8}, 3);
    auto adapted = add_adapters(backbone, "lora:rank=2", 7);
    auto x = images(5, {1, 8, 8});
    EXPECT_TRUE(at::equal(adapted->forward(x, adapted->init_params(7)),
                          backbone->forward(x, backbone->init_params(0))))
        << spec;
    // Other seeds draw other A factors on the same backbone.
    EXPECT_FALSE(at::equal(adapted->init_params(7), adapted->init_params(8))) << spec;
  }
}

// The backbone with each adapted weight W replaced by W + (alpha / rank) B A.
torch::Tensor merged_theta(const Model& backbone, const Model& adapted, const torch::Tensor& trainable, double scale) {
  auto full = backbone.init_params(0).clone();
  for (const auto& b : adapted.layout().blocks) {
    const auto pos = b.name.find(".lora_A.");
    auto value = trainable.narrow(0, b.offset, b.numel).view(b.shape);
    if (pos == std::string::npos) {
      if (b.name.find(".lora_B.") == std::string::npos)  // a trained backbone tensor (the head)
        full.narrow(0, backbone.layout().find(b.name).offset, b.numel).copy_(value.reshape({-1}));
      continue;
    }
    const std::string layer = b.name.substr(0, pos);
    const auto& B = adapted.layout().find(layer + ".lora_B.weight");
    auto Bv = trainable.narrow(0, B.offset, B.numel).view({B.shape[0], B.shape[1]});
    const auto& W = backbone.layout().find(layer + ".weight");
    auto delta = scale * Bv.mm(value.reshape({value.size(0), -1}));
    full.narrow(0, W.offset, W.numel).add_(delta.reshape({-1}));
  }
  return full;
}

TEST(Adapters, EqualTheBackboneWithMergedWeights) {
  at::manual_seed(1);
  for (const char* spec : {"resnet:8?width=4&groups=2", "transformer:1?dim=8&heads=2&patch=4"}) {
    auto backbone = pretrained(spec, {1, 8, 8}, 3);
    auto adapted = add_adapters(backbone, "lora:rank=3,alpha=6", 7);
    auto theta = at::randn({adapted->layout().size}, kF64);
    auto x = images(4, {1, 8, 8});
    auto merged = merged_theta(*backbone, *adapted, theta, 2.0);
    EXPECT_TRUE(at::allclose(adapted->forward(x, theta), backbone->forward(x, merged), 1e-10, 1e-12)) << spec;
    // Stacked parameter sets agree with one set at a time.
    auto stacked = at::stack({theta, theta * 0.5});
    auto out = adapted->forward(x, stacked);
    EXPECT_TRUE(at::allclose(out[1], adapted->forward(x, theta * 0.5), 1e-10, 1e-12)) << spec;
  }
}

TEST(Adapters, FrozenBlocksEnterAsConstantsWithTheSameOutputsAndGradients) {
  // The frozen model hands the backbone to the network block by block, frozen ones as constants
  // (run once for all stacked sets up to the first adapter); outputs and gradients equal those of
  // the plain forward over the full parameter vector.
  at::manual_seed(2);
  auto backbone = pretrained("resnet:8?width=4&groups=2", {1, 8, 8}, 3);
  auto adapted = add_adapters(backbone, "lora:rank=2,targets=stage3", 7);
  const auto& frozen = adapted->require<FrozenParameters>("the test");
  auto arch = parse_architecture("a", adapted->require<Architecture>("the test").architecture());
  auto plain = make_network("a", arch.input_shape, arch.ops, at::kDouble);
  auto x = images(6, {1, 8, 8});
  for (int64_t S : {0, 3}) {
    auto theta = (S == 0 ? at::randn({adapted->layout().size}, kF64) : at::randn({S, adapted->layout().size}, kF64))
                     .requires_grad_(true);
    auto out = adapted->forward(x, theta);
    auto grad = torch::autograd::grad({out.pow(2).sum()}, {theta})[0];
    auto ref_theta = theta.detach().clone().requires_grad_(true);
    auto ref = plain->forward(x, frozen.full_theta(ref_theta));
    auto ref_grad = torch::autograd::grad({ref.pow(2).sum()}, {ref_theta})[0];
    EXPECT_TRUE(at::allclose(out, ref, 1e-10, 1e-12)) << "S = " << S;
    EXPECT_TRUE(at::allclose(grad, ref_grad, 1e-9, 1e-11)) << "S = " << S;
  }
}

TEST(Adapters, TargetsChooseLayersAndBadSpecsSayWhy) {
  auto backbone = pretrained("resnet:8?width=4&groups=2", {1, 8, 8}, 3);
  auto names = [](const Model& m) {
    std::vector<std::string> out;
    for (const auto& b : m.layout().blocks) out.push_back(b.name);
    return out;
  };
  auto stage3 = names(*add_adapters(backbone, "lora:targets=stage3,head=frozen", 1));
  EXPECT_EQ(stage3, (std::vector<std::string>{"stage3.0.conv1.lora_A.weight", "stage3.0.conv1.lora_B.weight",
                                              "stage3.0.conv2.lora_A.weight", "stage3.0.conv2.lora_B.weight",
                                              "stage3.0.shortcut.lora_A.weight", "stage3.0.shortcut.lora_B.weight"}));
  auto with_head = names(*add_adapters(backbone, "lora:targets=stem", 1));
  EXPECT_EQ(with_head.back(), "head.bias");
  EXPECT_EQ(names(*add_adapters(backbone, "lora:targets=stem,a=frozen", 1)).front(), "stem.lora_B.weight");
  EXPECT_THROW(add_adapters(backbone, "lora:targets=nothing", 1), InvalidArgument);
  EXPECT_THROW(add_adapters(backbone, "lora:targets=head", 1), InvalidArgument);  // the head is not adaptable
  EXPECT_THROW(add_adapters(backbone, "lora:rank=0", 1), InvalidArgument);
  EXPECT_THROW(add_adapters(backbone, "dora:rank=2", 1), InvalidArgument);
  EXPECT_THROW(add_adapters(make_model("mlp:8", {4}, 2), "lora", 1), NotSupported);
  EXPECT_EQ(adaptable_layers(*backbone).front(), "stem (conv 1 -> 4, 3x3)");
}

DataParts image_data(int64_t n, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  Dataset d;
  d.y = at::randint(3, {n}, gen, at::TensorOptions().dtype(at::kLong));
  d.x = at::randn({n, 1, 8, 8}, gen, at::TensorOptions());
  d.x.narrow(2, 0, 4).add_(d.y.view({n, 1, 1, 1}).to(at::kFloat));
  d.task = Task::Classification;
  d.num_classes = 3;
  d.standardize_inputs = false;
  d.name = "images";
  DataParts parts;
  parts.fit = d;
  return parts;
}

TEST(Adapters, FittingLeavesTheBackboneBitIdentical) {
  auto model = make_model("resnet:8?width=4&groups=2", {1, 8, 8}, 3);
  auto weights = model->init_params(11);
  FitRequest req;
  req.data = image_data(64, 2);
  req.built_model = with_initial_weights(model, weights);
  req.adapters = "lora:rank=2";
  req.method = "map";
  req.train.epochs = 3;
  req.train.batch_size = 16;
  req.train.quiet = true;
  auto fitted = fit(req);
  const auto& frozen = fitted.model->require<FrozenParameters>("the test");
  auto full = frozen.full_theta(fitted.posterior->sample(1, 0)[0]);
  int backbone_tensors = 0, adapters_moved = 0;
  const auto& adapted_blocks = fitted.model->layout().blocks;
  for (const auto& b : model->layout().blocks) {
    if (b.name.rfind("head.", 0) == 0) continue;  // trained in full
    // The adapted network's full theta holds each backbone tensor at its own offset.
    bool found = false;
    for (const auto& ab : adapted_blocks) found = found || ab.name == b.name;
    EXPECT_FALSE(found) << b.name << " is trainable";
    ++backbone_tensors;
  }
  // Compare through the names of the adapted network's full layout.
  auto reference = named_weights(*model, weights);
  auto arch = parse_architecture("a", fitted.model->require<Architecture>("the test").architecture());
  auto rebuilt = make_network("a", arch.input_shape, arch.ops, at::kFloat);
  for (const auto& [name, value] : named_weights(*rebuilt, full)) {
    if (name.find(".lora_B.") != std::string::npos && value.abs().max().item<double>() > 0) ++adapters_moved;
    for (const auto& [ref_name, ref_value] : reference)
      if (ref_name == name && name.rfind("head.", 0) != 0)
        EXPECT_TRUE(at::equal(ref_value, value)) << name << " changed";
  }
  EXPECT_GT(backbone_tensors, 10);
  EXPECT_GT(adapters_moved, 3);
  EXPECT_EQ(fitted.info.at("adapters"), "lora:rank=2");
}

// Ensemble members share one data order by default when the backbone's first layer is frozen
// (its frozen layers then run once for all members), and take their own otherwise.
TEST(Adapters, EnsembleMembersShareTheDataOrderWhenTheFirstLayerIsFrozen) {
  auto model = make_model("resnet:8?width=4&groups=2", {1, 8, 8}, 3);
  auto members = [&](const std::string& targets, const std::string& method) {
    FitRequest req;
    req.data = image_data(64, 2);
    req.built_model = with_initial_weights(model, model->init_params(11));
    req.adapters = "lora:rank=2,targets=" + targets;
    req.method = method;
    req.train.epochs = 2;
    req.train.batch_size = 16;
    req.train.quiet = true;
    return dynamic_cast<const ParticlePosterior&>(*fit(req).posterior).particles();
  };
  for (const std::string targets : {"stage3", "all"}) {
    auto automatic = members(targets, "ensemble:members=2");
    const bool shared = at::equal(automatic, members(targets, "ensemble:members=2,shuffle=shared"));
    const bool apart = at::equal(automatic, members(targets, "ensemble:members=2,shuffle=member"));
    EXPECT_EQ(shared, targets == "stage3") << targets;
    EXPECT_EQ(apart, targets == "all") << targets;
  }
}

// A network of linear maps on [d, 1, 1] inputs: fc then a one-output head.
std::shared_ptr<Model> linear_backbone(int64_t d, int64_t k) {
  std::vector<NetOp> ops = {net_op(NetOp::GlobalPool), net_op(NetOp::Linear, "fc", d, k),
                            net_op(NetOp::Linear, "head", k, 1)};
  auto net = make_network("linear", {d, 1, 1}, ops, at::kDouble);
  return with_initial_weights(net, at::randn({net->layout().size}, kF64));
}

// Jacobian of the outputs [n] with respect to theta: [n, P].
torch::Tensor jacobian(const Model& model, const torch::Tensor& theta, const torch::Tensor& x) {
  auto th = theta.clone().requires_grad_(true);
  auto f = model.forward(x, th).select(1, 0);
  std::vector<torch::Tensor> rows;
  for (int64_t i = 0; i < f.size(0); ++i) rows.push_back(torch::autograd::grad({f[i]}, {th}, {}, true)[0]);
  return at::stack(rows);
}

TEST(Adapters, LaplaceOnALinearBackboneIsTheConjugatePosterior) {
  // With A frozen (LoRA-FA) the network is linear in B: the Laplace posterior over B, full or
  // KFAC (exact here: every example pulls back the same output gradient), is the conjugate one.
  at::manual_seed(4);
  const int64_t n = 30, d = 5, k = 3;
  auto adapted = add_adapters(linear_backbone(d, k), "lora:rank=2,head=frozen,a=frozen", 2);
  ASSERT_EQ(adapted->layout().blocks.size(), 1u);
  Dataset data;
  data.x = at::randn({n, d, 1, 1}, kF64);
  data.y = at::randn({n}, kF64);
  data.task = Task::Regression;
  const double sigma = 0.7, lambda = 2.0;
  auto lik = Likelihood::parse("gaussian?sigma=0.7", data);
  auto theta = at::randn({adapted->layout().size}, kF64);
  auto J = jacobian(*adapted, theta, data.x);
  auto precision = lambda * at::eye(J.size(1), kF64) + J.t().mm(J) / (sigma * sigma);
  auto subset = ParamSubset::parse("all", *adapted);
  for (auto structure : {Structure::Full, Structure::Kron}) {
    auto curvature = compute_curvature(*adapted, lik, subset, theta, data, structure, CurvatureKind::GGN, 7);
    LaplacePosterior post(theta, subset, curvature, at::full({1}, lambda, kF64), sigma, 1.0);
    EXPECT_TRUE(at::allclose(post.precision_dense(), precision, 1e-9, 1e-10));
  }
}

TEST(Adapters, KfacWithOneExampleIsTheExactGgnBlock) {
  at::manual_seed(5);
  std::vector<NetOp> ops = {net_op(NetOp::GlobalPool), net_op(NetOp::Linear, "fc1", 4, 6), net_op(NetOp::ReLU),
                            net_op(NetOp::Linear, "fc2", 6, 5), net_op(NetOp::GELU),
                            net_op(NetOp::Linear, "head", 5, 3)};
  auto net = make_network("mlp-like", {4, 2, 2}, ops, at::kDouble);
  auto adapted = add_adapters(with_initial_weights(net, net->init_params(1)), "lora:rank=2", 3);
  Dataset data;
  data.x = at::randn({1, 4, 2, 2}, kF64);
  data.y = at::zeros({1}, at::TensorOptions().dtype(at::kLong));
  data.task = Task::Classification;
  data.num_classes = 3;
  auto lik = Likelihood::parse("categorical", data);
  auto theta = at::randn({adapted->layout().size}, kF64);  // B away from zero: A's curvature is not trivial
  auto subset = ParamSubset::parse("all", *adapted);
  auto J = [&] {
    auto th = theta.clone().requires_grad_(true);
    auto f = adapted->forward(data.x, th).squeeze(0);
    std::vector<torch::Tensor> rows;
    for (int64_t c = 0; c < 3; ++c) rows.push_back(torch::autograd::grad({f[c]}, {th}, {}, true)[0]);
    return at::stack(rows);
  }();
  auto p = at::softmax(adapted->forward(data.x, theta).squeeze(0), 0);
  auto ggn = J.t().mm(at::diag(p) - at::outer(p, p)).mm(J);
  auto kron = compute_curvature(*adapted, lik, subset, theta, data, Structure::Kron, CurvatureKind::GGN, 1).dense();
  ASSERT_EQ(subset.layers.size(), 5u);  // fc1 and fc2's A and B, and the head
  for (const auto& l : subset.layers) {
    auto block = [&](const torch::Tensor& m) { return m.narrow(0, l.offset, l.size()).narrow(1, l.offset, l.size()); };
    if (l.bias_block >= 0) {  // the head: weight and bias blocks separately
      auto w = [&](const torch::Tensor& m) {
        return m.narrow(0, l.offset, l.num_weights()).narrow(1, l.offset, l.num_weights());
      };
      EXPECT_TRUE(at::allclose(w(kron), w(ggn), 1e-9, 1e-12));
      continue;
    }
    EXPECT_TRUE(at::allclose(block(kron), block(ggn), 1e-9, 1e-12))
        << adapted->layout().blocks[l.weight_block].name;
  }
}

TEST(Adapters, KronAndDiagGlmVariancesEqualTheirDenseCovariances) {
  // The linearized predictive over adapter factors (bias-free layers) in the eigenbases equals
  // J Sigma J^T with Sigma the inverse of the same curvature made dense, plus the prior.
  at::manual_seed(6);
  for (const char* spec : {"resnet:8?width=4&groups=2", "transformer:1?dim=8&heads=2&patch=4"}) {
    auto adapted = add_adapters(pretrained(spec, {1, 8, 8}, 3), "lora:rank=2", 1);
    Dataset data;
    data.x = images(6, {1, 8, 8});
    data.y = at::randint(3, {6}, at::TensorOptions().dtype(at::kLong));
    data.task = Task::Classification;
    data.num_classes = 3;
    auto lik = Likelihood::parse("categorical", data);
    auto theta = at::randn({adapted->layout().size}, kF64) * 0.3;
    auto subset = ParamSubset::parse("all", *adapted);
    auto x = images(3, {1, 8, 8});
    for (auto structure : {Structure::Kron, Structure::Diag}) {
      auto curv = compute_curvature(*adapted, lik, subset, theta, data, structure, CurvatureKind::GGN, 4);
      const double delta = 0.7;
      auto H = curv.dense();
      LaplacePosterior post(theta, subset, curv, at::full({1}, delta, kF64), 1.0, 1.0);
      auto fvar = post.function_variance(*adapted, x, false, nullptr);
      auto cov = at::inverse(H + delta * at::eye(H.size(0), kF64));
      for (int64_t i = 0; i < x.size(0); ++i) {
        auto th = theta.clone().requires_grad_(true);
        auto f = adapted->forward(x.narrow(0, i, 1), th).squeeze(0);
        std::vector<torch::Tensor> rows;
        for (int64_t k = 0; k < 3; ++k) rows.push_back(torch::autograd::grad({f[k]}, {th}, {}, true)[0]);
        auto J = at::stack(rows);
        EXPECT_TRUE(at::allclose(fvar[i], J.mm(cov).mm(J.t()), 1e-8, 1e-10)) << spec << " example " << i;
      }
    }
  }
}

}  // namespace
}  // namespace credence
