// decide: the Bayes-optimal action per input under a cost file, its expected cost, and the
// realized cost on the labels; optionally next to the same rule on a baseline (e.g. MAP) posterior.
#include <ATen/ATen.h>
#include <fmt/format.h>

#include <fstream>

#include "common.h"
#include "credence/core/error.h"
#include "credence/core/files.h"
#include "credence/eval/decision.h"

namespace credence::cli {
namespace {

struct Outcome {
  Row row;
  Decisions decisions;
  torch::Tensor realized;
  std::vector<int64_t> counts;  ///< classification: inputs per action, in cost-matrix order
};

Outcome run_rule(const FittedModel& fitted, const std::string& file, const std::string& role, const Dataset& data,
                 const CostSpec& costs, int64_t samples) {
  auto p = fitted.predict(data, {samples}).to(torch::kCPU);
  Outcome o;
  o.decisions = decide(p, costs);
  o.realized = realized_cost(o.decisions, costs, data.y.to(torch::kCPU));
  const double n = static_cast<double>(data.size());
  double expected = o.decisions.expected_cost.sum().item<double>(), realized = o.realized.sum().item<double>();
  o.row = {{"method", fitted.method}, {"role", role},          {"file", file},
           {"expected_total", expected}, {"expected_mean", expected / n},
           {"realized_total", realized}, {"realized_mean", realized / n}};
  if (costs.task == Task::Classification) {
    auto counts = at::bincount(o.decisions.action, {}, static_cast<int64_t>(costs.action_names.size()));
    nlohmann::json actions = nlohmann::json::object();
    for (size_t a = 0; a < costs.action_names.size(); ++a) {
      o.counts.push_back(counts[a].item<int64_t>());
      actions[costs.action_names[a]] = o.counts.back();
    }
    o.row["actions"] = actions;
  } else if (costs.rule == CostSpec::Rule::Interval) {
    auto y = data.y.to(torch::kCPU, at::kDouble);
    const auto& d = o.decisions;
    o.row["coverage"] = ((y >= d.lower) & (y <= d.upper)).to(at::kDouble).mean().item<double>();
    o.row["mean_width"] = (d.upper - d.lower).mean().item<double>();
  }
  return o;
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string quoted = "\"";
  for (char c : s) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
  return quoted + "\"";
}

/// The columns of one rule's decisions, each prefixed (e.g. "baseline_").
std::vector<std::string> header(const CostSpec& costs, const std::string& prefix) {
  std::vector<std::string> action = {"action"};
  if (costs.task == Task::Regression && costs.rule == CostSpec::Rule::Interval) action = {"lower", "upper"};
  action.push_back("expected_cost");
  action.push_back("realized_cost");
  for (auto& c : action) c = prefix + c;
  return action;
}

std::string cells(const Outcome& o, const CostSpec& costs, int64_t i) {
  const auto& d = o.decisions;
  std::string s;
  if (costs.task == Task::Classification)
    s = csv_field(costs.action_names[d.action[i].item<int64_t>()]);
  else if (costs.rule == CostSpec::Rule::Interval)
    s = fmt::format("{:.6g},{:.6g}", d.lower[i].item<double>(), d.upper[i].item<double>());
  else
    s = fmt::format("{:.6g}", d.value[i].item<double>());
  return s + fmt::format(",{:.6g},{:.6g}", d.expected_cost[i].item<double>(), o.realized[i].item<double>());
}

void write_csv(std::ostream& out, const std::vector<Outcome>& outcomes, const CostSpec& costs,
               const Dataset& data) {
  std::vector<std::string> cols = {"truth"};
  for (size_t k = 0; k < outcomes.size(); ++k)
    for (const auto& c : header(costs, k == 0 ? "" : "baseline_")) cols.push_back(c);
  out << fmt::format("{}\n", fmt::join(cols, ","));
  auto y = data.y.to(torch::kCPU);
  for (int64_t i = 0; i < data.size(); ++i) {
    out << (costs.task == Task::Classification ? csv_field(costs.action_names[y[i].item<int64_t>()])
                                               : fmt::format("{:.6g}", y[i].item<double>()));
    for (const auto& o : outcomes) out << "," << cells(o, costs, i);
    out << "\n";
  }
}

}  // namespace

void add_decide(CLI::App& app) {
  auto* cmd = app.add_subcommand("decide", "Bayes-optimal actions under a cost file, with expected and realized costs");
  struct Args {
    CommonOptions common;
    std::string posterior, data, costs, baseline, out, json;
    int64_t samples = 32;
    bool force = false;
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("--posterior", args->posterior, "posterior file from `credence fit`")->required();
  cmd->add_option("--data", args->data, "labelled data spec to decide on")->required();
  cmd->add_option("--costs", args->costs, "JSON cost file (see docs/decisions.md)")->required();
  cmd->add_option("--baseline", args->baseline, "a second posterior file (e.g. MAP) to apply the same rule to");
  cmd->add_option("--out", args->out, "CSV of the action, expected and realized cost per input");
  cmd->add_option("--json", args->json, "write the totals as JSON");
  cmd->add_option("--samples", args->samples, "weight samples for sampled predictives")->capture_default_str();
  cmd->add_flag("--force", args->force, "replace --out/--json if they exist");
  args->common.add(*cmd);
  cmd->callback([args] {
    args->common.apply();
    check_optional_output(args->out, args->force, "--out");
    check_optional_output(args->json, args->force, "--json");
    auto costs = load_cost_spec(args->costs);
    auto device = args->common.torch_device();
    auto fitted = FittedModel::load(args->posterior, device);
    Dataset data = load_data(args->data, {fitted.model->dtype()}).fit;
    std::vector<Outcome> outcomes = {run_rule(fitted, args->posterior, "posterior", data, costs, args->samples)};
    if (!args->baseline.empty()) {
      auto baseline = FittedModel::load(args->baseline, device);
      outcomes.push_back(run_rule(baseline, args->baseline, "baseline", data, costs, args->samples));
    }

    std::vector<Row> rows;
    for (const auto& o : outcomes) {
      Row r = o.row;
      r.erase("actions");
      r.erase("file");
      rows.push_back(r);
    }
    fmt::print("{} inputs from {}, costs from {}\n", data.size(), args->data, args->costs);
    print_table(rows);
    for (const auto& o : outcomes) {
      std::vector<std::string> parts;
      for (size_t a = 0; a < o.counts.size(); ++a) parts.push_back(fmt::format("{} {}", costs.action_names[a], o.counts[a]));
      if (parts.empty()) continue;
      fmt::print("actions ({}): {}\n", o.row.at("method").get<std::string>(), fmt::join(parts, ", "));
    }
    if (outcomes.size() == 2) {
      double mine = outcomes[0].row.at("realized_total").get<double>();
      double base = outcomes[1].row.at("realized_total").get<double>();
      fmt::print("realized total cost {:.6g} vs {:.6g} for the baseline ({:+.6g})\n", mine, base, mine - base);
    }
    if (!args->out.empty())
      write_file_atomically(args->out, args->force, [&](std::ostream& out) { write_csv(out, outcomes, costs, data); });
    if (!args->json.empty()) {
      nlohmann::json j = {{"posterior", args->posterior}, {"data", args->data}, {"costs", args->costs},
                          {"inputs", data.size()}, {"results", nlohmann::json::array()}};
      if (!args->baseline.empty()) j["baseline"] = args->baseline;
      for (const auto& o : outcomes) j["results"].push_back(o.row);
      write_json(args->json, j, args->force);
    }
  });
}

}  // namespace credence::cli
