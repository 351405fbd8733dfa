// The conformance table: every registered method (and the all-weights variants of curvature
// methods) on every model family, on tiny instances. Each pair either fits, predicts finite
// values, saves and loads to identical predictions and repeats itself under a seed, or is refused
// with a NotSupported that names what the model lacks. A new method or family adds one row below.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <filesystem>
#include <map>

#include "credence/core/error.h"
#include "credence/credence.h"
#include "credence/fit/fit.h"
#include "credence/methods/method.h"

namespace credence {
namespace {

// One tiny instance per family (torchscript has its own tests: it needs a saved module), the
// transformer over token sequences as well as image patches, and low-rank adapters on the
// convolutional and the attention family.
struct FamilyRow {
  std::string model, adapters;
  bool tokens = false;  ///< sequences of token ids instead of images
};
const std::map<std::string, FamilyRow>& family_rows() {
  static const std::map<std::string, FamilyRow> rows = {
      {"mlp", {"mlp:8", ""}},
      {"cnn", {"cnn:lenet", ""}},
      {"resnet", {"resnet:8?width=4&groups=2", ""}},
      {"transformer", {"transformer:1?dim=8&heads=2&patch=4", ""}},
      {"resnet_lora", {"resnet:8?width=4&groups=2", "lora:rank=2"}},
      {"transformer_lora", {"transformer:1?dim=8&heads=2&patch=4", "lora:rank=2,targets=blocks"}},
      {"transformer_tokens", {"transformer:1?dim=8&heads=2&vocab=8", "", true}},
  };
  return rows;
}

// Method variants beyond each registered method's defaults: the all-weights paths.
const std::vector<std::string>& extra_method_rows() {
  static const std::vector<std::string> rows = {
      "laplace:subset=all", "laplace:subset=all,hessian=diag", "laplace:subset=all,hessian=lowrank:3",
      "laplace:subset=all,predictive=nn", "vi:subset=all"};
  return rows;
}

// A few short runs per method: enough steps to move, few enough for CI.
const std::map<std::string, std::string>& quick_options() {
  static const std::map<std::string, std::string> options = {
      {"nuts", "warmup=5,draws=4,chains=2,max_depth=4"}, {"hmc", "warmup=5,draws=4,chains=2"},
      {"ess", "warmup=5,draws=4,chains=2"},
      {"ensemble", "members=2"},                         {"multiswag", "members=2"},
      {"svgd", "members=2"},                             {"repulsive", "members=2"},
      {"sgld", "samples=2"},                             {"sghmc", "samples=2"},
      {"psgld", "samples=2"},                            {"csgmcmc", "cycles=1,exploration=0.5,samples_per_cycle=2"},
      // 48 examples give IVON's default initial Hessian (0.1) weight noise that LeNet, with no
      // normalization, turns into diverging outputs; a larger one keeps the noise small.
      {"ivon", "hess_init=1"},
  };
  return options;
}

std::string with_quick_options(const std::string& method) {
  const std::string name = method.substr(0, method.find(':'));
  auto it = quick_options().find(name);
  if (it == quick_options().end()) return method;
  return method + (method.find(':') == std::string::npos ? ":" : ",") + it->second;
}

// 12x12 one-channel images whose class is which quadrant holds the brightest square.
DataParts tiny_images(int64_t n, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  Dataset d;
  d.y = at::randint(3, {n}, gen, at::TensorOptions().dtype(at::kLong));
  d.x = 0.3 * at::randn({n, 1, 12, 12}, gen, at::TensorOptions());
  for (int64_t i = 0; i < n; ++i) {
    int64_t c = d.y[i].item<int64_t>();
    d.x[i].narrow(1, (c % 2) * 6, 6).narrow(2, (c / 2) * 6, 6) += 1.0;
  }
  d.task = Task::Classification;
  d.num_classes = 3;
  d.name = "tiny-images";
  d.standardize_inputs = false;
  DataParts parts;
  parts.fit = d;
  return parts;
}

DataParts tiny_data(const FamilyRow& row, int64_t n, uint64_t seed) {
  if (!row.tokens) return tiny_images(n, seed);
  return load_data(fmt::format("synthetic:tokens?n={}&seed={}&length=6&vocab=8", n, seed));
}

struct Cell {
  std::string method, family;
};
void PrintTo(const Cell& cell, std::ostream* os) { *os << cell.method << " on " << cell.family; }

std::vector<Cell> all_cells() {
  std::vector<std::string> methods;
  for (const auto& m : method_registry())
    if (m.uses_network) methods.push_back(m.name);  // the GP has its own tests
  for (const auto& m : extra_method_rows()) methods.push_back(m);
  std::vector<Cell> cells;
  for (const auto& m : methods)
    for (const auto& [family, row] : family_rows()) cells.push_back({m, family});
  return cells;
}

class Conformance : public ::testing::TestWithParam<Cell> {};

FittedModel fit_cell(const Cell& cell) {
  FitRequest req;
  req.data = tiny_data(family_rows().at(cell.family), 48, 1);
  req.model = family_rows().at(cell.family).model;
  req.adapters = family_rows().at(cell.family).adapters;
  req.method = with_quick_options(cell.method);
  req.train.epochs = 2;
  req.train.batch_size = 16;
  req.train.seed = 5;
  req.train.quiet = true;
  return fit(req);
}

TEST_P(Conformance, FitsPredictsRoundTripsAndRepeats) {
  const Cell& cell = GetParam();
  FittedModel fitted;
  try {
    fitted = fit_cell(cell);
  } catch (const NotSupported& e) {
    // A refusal must say what is missing, in one line.
    const std::string what = e.what();
    EXPECT_NE(what.find("lacks"), std::string::npos) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
    GTEST_SKIP() << "not supported: " << what;
  }
  auto test = tiny_data(family_rows().at(cell.family), 20, 2).fit;
  PredictOptions options;
  options.samples = 4;
  auto a = fitted.predict(test, options);
  ASSERT_TRUE(a.probs.defined());
  EXPECT_TRUE(a.probs.isfinite().all().item<bool>());
  EXPECT_LT((a.probs.sum(1) - 1).abs().max().item<double>(), 1e-4);

  auto dir = std::filesystem::temp_directory_path() /
             ("credence-conformance-" + std::to_string(::getpid()) + "-" + cell.family);
  std::filesystem::create_directories(dir);
  auto file = (dir / "fit.crd").string();
  fitted.save(file, true);
  auto loaded = FittedModel::load(file);
  std::filesystem::remove_all(dir);
  EXPECT_TRUE(at::equal(loaded.predict(test, options).probs, a.probs));

  auto again = fit_cell(cell);
  EXPECT_TRUE(at::equal(again.predict(test, options).probs, a.probs)) << "not deterministic under a seed";
}

// Every registered family has a row (or is torchscript, tested with its fixtures).
TEST(ConformanceTable, EveryFamilyHasARow) {
  for (const auto& f : model_registry())
    if (f.name != "torchscript") EXPECT_TRUE(family_rows().count(f.name)) << "add a row for family " << f.name;
}

INSTANTIATE_TEST_SUITE_P(Table, Conformance, ::testing::ValuesIn(all_cells()),
                         [](const ::testing::TestParamInfo<Cell>& info) {
                           std::string name = info.param.method + "_on_" + info.param.family;
                           for (auto& ch : name)
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return name;
                         });

}  // namespace
}  // namespace credence
