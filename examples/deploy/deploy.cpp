// A posterior inside a program that acts on one input at a time: load a file saved by
// `credence fit`, then for each line of comma-separated input values (original units, the
// input flattened) print the predictive, a credible set or interval and, with a cost file, the
// Bayes action and its expected cost.
//   example_deploy POSTERIOR [--costs FILE.json] [--level 0.9] < inputs.csv
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "credence/credence.h"
#include "credence/eval/decision.h"

namespace {

std::vector<double> parse_row(const std::string& line) {
  std::vector<double> values;
  std::stringstream in(line);
  for (std::string cell; std::getline(in, cell, ',');) values.push_back(std::stod(cell));
  return values;
}

}  // namespace

int main(int argc, char** argv) {
  credence::use_fast_blas_kernels(argv);
  credence::tune_allocator();
  credence::flush_denormals();  // subnormal weights slow matrix products many times on some CPUs
  credence::set_threads(1);  // one example at a time: more threads only add overhead
  if (argc < 2) {
    fmt::print(stderr, "usage: {} POSTERIOR [--costs FILE.json] [--level 0.9] < inputs.csv\n", argv[0]);
    return 2;
  }
  std::string costs_path;
  double level = 0.9;
  for (int i = 2; i + 1 < argc; i += 2) {
    if (std::string(argv[i]) == "--costs") costs_path = argv[i + 1];
    if (std::string(argv[i]) == "--level") level = std::stod(argv[i + 1]);
  }
  try {
    // Load once: the file's checksum is verified, the model rebuilt, a sampled posterior's draws
    // are made on the first prediction and kept for the rest.
    const auto fitted = credence::FittedModel::load(argv[1]);
    std::optional<credence::CostSpec> costs;
    if (!costs_path.empty()) {
      costs = credence::load_cost_spec(costs_path);
      costs->check_model(fitted.likelihood.task(), fitted.num_classes);
    }
    const auto& shape = fitted.model->input_shape();
    int64_t width = 1;
    for (auto s : shape) width *= s;
    std::vector<int64_t> batch_shape = {1};
    batch_shape.insert(batch_shape.end(), shape.begin(), shape.end());

    credence::Dataset one;  // reused for every input
    one.task = fitted.likelihood.task();
    one.num_classes = fitted.num_classes;
    for (std::string line; std::getline(std::cin, line);) {
      if (line.empty()) continue;
      auto values = parse_row(line);
      if (static_cast<int64_t>(values.size()) != width) {
        fmt::print(stderr, "expected {} values per line, got {}\n", width, values.size());
        return 1;
      }
      one.x = at::tensor(values, at::kDouble).to(fitted.model->dtype()).view(batch_shape);
      auto p = fitted.predict(one).to(torch::kCPU);
      std::string out;
      if (one.task == credence::Task::Classification) {
        auto probs = p.probs.to(at::kDouble)[0];
        std::vector<std::string> cells;
        for (int64_t c = 0; c < probs.size(0); ++c) cells.push_back(fmt::format("{:.6g}", probs[c].item<double>()));
        auto set = credence::credible_sets(p, level).member[0];
        std::vector<int64_t> members;
        for (int64_t c = 0; c < set.size(0); ++c)
          if (set[c].item<bool>()) members.push_back(c);
        out = fmt::format("class {} probs {} set {{{}}}", probs.argmax().item<int64_t>(), fmt::join(cells, ","),
                          fmt::join(members, ","));
      } else {
        auto interval = credence::credible_intervals(p, level);
        out = fmt::format("mean {:.6g} std {:.6g} interval [{:.6g}, {:.6g}]", p.mean[0].item<double>(),
                          p.var[0].sqrt().item<double>(), interval.lower[0].item<double>(),
                          interval.upper[0].item<double>());
      }
      if (costs) {
        auto d = credence::decide(p, *costs);
        std::string action = one.task == credence::Task::Classification
                                 ? costs->action_names[d.action[0].item<int64_t>()]
                             : d.lower.defined() ? fmt::format("[{:.6g}, {:.6g}]", d.lower[0].item<double>(),
                                                               d.upper[0].item<double>())
                                                 : fmt::format("{:.6g}", d.value[0].item<double>());
        out += fmt::format(" action {} expected_cost {:.6g}", action, d.expected_cost[0].item<double>());
      }
      fmt::print("{}\n", out);
      std::fflush(stdout);  // an answer per input, as it comes
    }
  } catch (const credence::Error& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  }
  return 0;
}
