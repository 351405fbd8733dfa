#include "credence/eval/decision.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>
#include <fstream>
#include <set>

#include "credence/core/error.h"
#include "credence/core/files.h"
#include "credence/eval/metrics.h"
#include "inputs.h"

namespace credence {

using nlohmann::json;

namespace {

const std::vector<std::string> kFmnistClasses = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                 "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

[[noreturn]] void bad(const std::string& what) { throw InvalidArgument("cost spec: " + what); }

double number(const json& j, const std::string& key) {
  if (!j.is_number()) bad(fmt::format("'{}' must be a number, got {}", key, j.dump()));
  return j.get<double>();
}

void allow_only(const json& j, const std::vector<std::string>& keys, const char* form) {
  for (const auto& item : j.items())
    if (item.key() != "comment" && std::find(keys.begin(), keys.end(), item.key()) == keys.end())
      bad(fmt::format("unknown key '{}' in a {} spec; allowed keys: {} (and comment)", item.key(), form,
                      fmt::join(keys, ", ")));
}

std::vector<std::string> class_names(const json& classes) {
  if (classes.is_string()) {
    if (classes.get<std::string>() == "fmnist") return kFmnistClasses;
    bad(fmt::format("'classes' is \"{}\"; give \"fmnist\", a class count or a list of names",
                    classes.get<std::string>()));
  }
  std::vector<std::string> names;
  if (classes.is_number_integer()) {
    if (classes.get<int64_t>() < 2) bad(fmt::format("'classes' is {}; a classifier has at least 2", classes.dump()));
    for (int64_t c = 0; c < classes.get<int64_t>(); ++c) names.push_back(std::to_string(c));
    return names;
  }
  if (classes.is_array()) {
    for (const auto& n : classes) {
      if (!n.is_string()) bad(fmt::format("'classes' names must be strings, got {}", n.dump()));
      names.push_back(n.get<std::string>());
    }
    return names;
  }
  bad(fmt::format("'classes' must be \"fmnist\", a class count or a list of names, got {}", classes.dump()));
}

/// The shortcut: every class is an action costing correct_cost when right and error_cost when
/// wrong; each extra action costs a fixed amount, or one amount per true class.
CostSpec parse_shortcut(const json& j) {
  allow_only(j, {"classes", "error_cost", "correct_cost", "actions"}, "classes/error_cost");
  CostSpec spec;
  spec.action_names = class_names(j.at("classes"));
  const size_t C = spec.action_names.size();
  double error = j.contains("error_cost") ? number(j["error_cost"], "error_cost") : 1.0;
  double correct = j.contains("correct_cost") ? number(j["correct_cost"], "correct_cost") : 0.0;
  for (size_t a = 0; a < C; ++a) {
    spec.matrix.emplace_back(C, error);
    spec.matrix[a][a] = correct;
  }
  const json actions = j.value("actions", json::array());
  if (!actions.is_array()) bad("'actions' must be a list like [{\"name\": \"refer\", \"cost\": 1}]");
  for (const auto& action : actions) {
    if (!action.is_object() || !action.contains("name") || !action.contains("cost") || !action["name"].is_string())
      bad(fmt::format("each action needs a \"name\" and a \"cost\", e.g. {{\"name\": \"refer\", \"cost\": 1}}; got {}",
                      action.dump()));
    allow_only(action, {"name", "cost"}, "action");
    spec.action_names.push_back(action["name"].get<std::string>());
    const json& cost = action["cost"];
    if (cost.is_array()) {
      if (cost.size() != C)
        bad(fmt::format("action '{}' has {} costs; give one per class ({}) or a single number",
                        spec.action_names.back(), cost.size(), C));
      std::vector<double> row;
      for (const auto& v : cost) row.push_back(number(v, "cost"));
      spec.matrix.push_back(row);
    } else {
      spec.matrix.emplace_back(C, number(cost, "cost"));
    }
  }
  return spec;
}

CostSpec parse_matrix(const json& j) {
  allow_only(j, {"matrix", "action_names"}, "matrix");
  CostSpec spec;
  const json& m = j["matrix"];
  if (!m.is_array() || m.empty()) bad("'matrix' must be a non-empty list of rows, one per action");
  for (const auto& row : m) {
    if (!row.is_array()) bad(fmt::format("each 'matrix' row must be a list of costs, one per class; got {}", row.dump()));
    std::vector<double> r;
    for (const auto& v : row) r.push_back(number(v, "matrix"));
    spec.matrix.push_back(r);
  }
  if (j.contains("action_names")) {
    if (!j["action_names"].is_array()) bad("'action_names' must be a list of strings");
    for (const auto& n : j["action_names"]) {
      if (!n.is_string()) bad(fmt::format("'action_names' must be strings, got {}", n.dump()));
      spec.action_names.push_back(n.get<std::string>());
    }
  } else {  // rows up to the class count are taken to predict that class
    for (size_t a = 0; a < spec.matrix.size(); ++a)
      spec.action_names.push_back(a < spec.matrix[0].size() ? std::to_string(a) : fmt::format("action{}", a));
  }
  return spec;
}

CostSpec parse_regression(const json& j) {
  if (!j["type"].is_string()) bad("'type' must be \"squared\", \"pinball\" or \"interval\"");
  const std::string type = j["type"].get<std::string>();
  CostSpec spec;
  spec.task = Task::Regression;
  if (type == "squared") {
    allow_only(j, {"type"}, "squared");
    spec.rule = CostSpec::Rule::Squared;
  } else if (type == "pinball") {
    allow_only(j, {"type", "under", "over"}, "pinball");
    spec.rule = CostSpec::Rule::Pinball;
    if (!j.contains("under") || !j.contains("over"))
      bad("a pinball spec needs 'under' and 'over' (cost per unit the action is below / above the truth)");
    spec.under = number(j["under"], "under");
    spec.over = number(j["over"], "over");
  } else if (type == "interval") {
    allow_only(j, {"type", "width_cost", "miss_cost", "miss"}, "interval");
    spec.rule = CostSpec::Rule::Interval;
    if (!j.contains("width_cost") || !j.contains("miss_cost"))
      bad("an interval spec needs 'width_cost' (per unit of width) and 'miss_cost'");
    spec.width_cost = number(j["width_cost"], "width_cost");
    spec.miss_cost = number(j["miss_cost"], "miss_cost");
    const std::string miss = j.value("miss", std::string("distance"));
    if (miss != "distance" && miss != "fixed")
      bad(fmt::format("'miss' is \"{}\"; give \"distance\" (miss_cost per unit outside) or \"fixed\" (per miss)", miss));
    spec.miss_fixed = miss == "fixed";
  } else {
    bad(fmt::format("unknown type \"{}\"; regression types are squared, pinball, interval "
                    "(classification specs have 'classes' or 'matrix' and no 'type')", type));
  }
  return spec;
}

void check_cost(double v, const std::string& what) {
  if (!std::isfinite(v) || v < 0) bad(fmt::format("{} is {}; costs must be finite and >= 0", what, v));
}

// ---- regression mixtures -------------------------------------------------------------------

/// The predictive mixture as component means and sds [S, N] and weights [S, 1], float64.
struct Components {
  torch::Tensor mean, sd, w;
};

Components mixture_of(const Predictive& p) {
  auto m = eval_detail::regression_mixture(p, "decide");
  return {m.mean, m.var.sqrt(), m.w.unsqueeze(1)};
}

torch::Tensor std_pdf(const torch::Tensor& z) { return at::exp(-0.5 * z * z) / 2.5066282746310002; }

/// E[(a - y)^+] and E[(y - a)^+] under the mixture, for actions a [N].
std::pair<torch::Tensor, torch::Tensor> partial_moments(const Components& m, const torch::Tensor& a) {
  torch::Tensor z = (a - m.mean) / m.sd, phi = std_pdf(z), Phi = eval_detail::normal_cdf(z);
  torch::Tensor below = ((a - m.mean) * Phi + m.sd * phi) * m.w;        // E[(a - y)^+]
  torch::Tensor above = ((m.mean - a) * (1 - Phi) + m.sd * phi) * m.w;  // E[(y - a)^+]
  return {below.sum(0), above.sum(0)};
}

/// Fixed miss cost: E cost = width*(u - l) + miss*(1 - F(u) + F(l)) = miss + g(l) - g(u) with
/// g(t) = miss*F(t) - width*t; on a grid, the best l <= u for each u is a running minimum of g.
void fixed_miss_interval(const Components& m, double width, double miss, Decisions& d) {
  constexpr int64_t kGrid = 4097, kChunk = 256;
  const int64_t N = m.mean.size(1);
  d.lower = at::empty({N}, m.mean.options());
  d.upper = at::empty({N}, m.mean.options());
  d.expected_cost = at::empty({N}, m.mean.options());
  torch::Tensor steps = at::linspace(0.0, 1.0, kGrid, m.mean.options()).unsqueeze(1);
  for (int64_t start = 0; start < N; start += kChunk) {
    const int64_t n = std::min(kChunk, N - start);
    Components c{m.mean.narrow(1, start, n), m.sd.narrow(1, start, n), m.w};
    torch::Tensor lo = (c.mean - 8 * c.sd).amin(0), hi = (c.mean + 8 * c.sd).amax(0);
    torch::Tensor t = lo + (hi - lo) * steps;  // [K, n]
    torch::Tensor F = at::zeros_like(t);
    for (int64_t s = 0; s < c.mean.size(0); ++s)
      F += c.w[s] * eval_detail::normal_cdf((t - c.mean[s]) / c.sd[s]);
    torch::Tensor g = miss * F - width * t;
    auto [run_min, run_arg] = at::cummin(g, 0);
    auto [best, j] = (miss + run_min - g).min(0, /*keepdim=*/true);
    torch::Tensor i = run_arg.gather(0, j);
    d.lower.narrow(0, start, n).copy_(t.gather(0, i).squeeze(0));
    d.upper.narrow(0, start, n).copy_(t.gather(0, j).squeeze(0));
    d.expected_cost.narrow(0, start, n).copy_(best.squeeze(0));
  }
}

torch::Tensor plus_part(const torch::Tensor& t) { return t.clamp_min(0.0); }

}  // namespace

// ---- specs ---------------------------------------------------------------------------------

CostSpec parse_cost_spec(const json& j) {
  if (!j.is_object()) bad("expected a JSON object such as {\"classes\": 10, \"error_cost\": 10}");
  CostSpec spec;
  if (j.contains("type"))
    spec = parse_regression(j);
  else if (j.contains("matrix"))
    spec = parse_matrix(j);
  else if (j.contains("classes"))
    spec = parse_shortcut(j);
  else
    bad("give 'classes' and 'error_cost' (classification shortcut), 'matrix' (one row of costs per action), "
        "or 'type' (regression: squared, pinball, interval)");
  spec.validate();
  return spec;
}

// nlohmann's message without its "[json.exception.kind.N] " prefix.
static std::string json_detail(const json::exception& e) {
  std::string m = e.what();
  size_t close = m.find("] ");
  return m.rfind("[json.exception", 0) == 0 && close != std::string::npos ? m.substr(close + 2) : m;
}

CostSpec load_cost_spec(const std::string& path) {
  check_input_file(path, "cost file");
  std::ifstream in(path);
  if (!in) throw IoError(fmt::format("cannot read the cost file '{}'", path));
  json j;
  try {
    j = json::parse(in);
  } catch (const json::out_of_range& e) {
    throw InvalidArgument(fmt::format("cost file '{}' holds a number too large for a double ({}); give finite costs",
                                      path, json_detail(e)));
  } catch (const json::exception& e) {
    throw InvalidArgument(fmt::format("cost file '{}' is not valid JSON: {}", path, json_detail(e)));
  }
  try {
    return parse_cost_spec(j);
  } catch (const InvalidArgument& e) {
    throw InvalidArgument(fmt::format("{} (in '{}')", e.what(), path));
  } catch (const json::exception& e) {
    throw InvalidArgument(fmt::format("cost file '{}' has a value of the wrong type ({}): costs are numbers, "
                                      "names strings, matrices lists of lists of numbers",
                                      path, json_detail(e)));
  }
}

void CostSpec::validate() const {
  if (task == Task::Regression) {
    if (rule == Rule::Pinball) {
      check_cost(under, "'under'");
      check_cost(over, "'over'");
      if (under <= 0 || over <= 0) bad("'under' and 'over' must both be > 0 (else the best action is infinite)");
    } else if (rule == Rule::Interval) {
      check_cost(width_cost, "'width_cost'");
      check_cost(miss_cost, "'miss_cost'");
      if (width_cost <= 0 || miss_cost <= 0)
        bad("'width_cost' and 'miss_cost' must both be > 0 (else the best interval is infinite or empty)");
    }
    return;
  }
  if (matrix.empty() || matrix[0].empty()) bad("the cost matrix is empty; give one row per action, one column per class");
  for (size_t a = 0; a < matrix.size(); ++a) {
    if (matrix[a].size() != matrix[0].size())
      bad(fmt::format("cost matrix row {} has {} entries but row 0 has {}; every row needs one cost per class", a,
                      matrix[a].size(), matrix[0].size()));
    for (size_t c = 0; c < matrix[a].size(); ++c) check_cost(matrix[a][c], fmt::format("cost [{}][{}]", a, c));
  }
  if (action_names.size() != matrix.size())
    bad(fmt::format("{} action names for {} matrix rows; give one name per row", action_names.size(), matrix.size()));
  std::set<std::string> seen;
  for (const auto& n : action_names) {
    if (n.empty()) bad("an action name is empty");
    if (!seen.insert(n).second) bad(fmt::format("action name '{}' appears twice; names must be unique", n));
  }
}

void CostSpec::check_model(Task model_task, int64_t model_classes) const {
  validate();
  if (task != model_task)
    bad(task == Task::Classification
            ? "this is a classification cost spec but the model does regression; use {\"type\": \"pinball\", "
              "\"under\": U, \"over\": O}, {\"type\": \"interval\", ...} or {\"type\": \"squared\"}"
            : "this is a regression cost spec but the model is a classifier; use {\"classes\": C, \"error_cost\": E} "
              "or {\"matrix\": [...]}");
  if (task == Task::Classification && num_classes() != model_classes)
    bad(fmt::format("the cost matrix has {} columns (true classes) but the model predicts {} classes; give one "
                    "column per class (or \"classes\": {})",
                    num_classes(), model_classes, model_classes));
}

// ---- decisions -----------------------------------------------------------------------------

Decisions decide(const Predictive& p, const CostSpec& costs) {
  Decisions d;
  if (costs.task == Task::Classification) {
    if (p.task != Task::Classification) costs.check_model(p.task, 0);
    torch::Tensor probs = eval_detail::class_probs(p, "decide");
    costs.check_model(Task::Classification, probs.size(1));
    std::vector<double> flat;
    for (const auto& row : costs.matrix) flat.insert(flat.end(), row.begin(), row.end());
    torch::Tensor L = at::tensor(flat, probs.options()).view({-1, costs.num_classes()});
    auto [best, action] = probs.matmul(L.t()).min(1);  // expected cost of every action: [N, A]
    d.action = action;
    d.expected_cost = best;
    return d;
  }
  costs.check_model(p.task, 0);
  Components m = mixture_of(p);
  switch (costs.rule) {
    case CostSpec::Rule::Squared: {
      d.value = (m.mean * m.w).sum(0);
      d.expected_cost = ((m.sd.square() + (m.mean - d.value).square()) * m.w).sum(0);
      break;
    }
    case CostSpec::Rule::Pinball: {
      d.value = predictive_quantile(p, costs.under / (costs.under + costs.over)).to(at::kDouble);
      auto [below, above] = partial_moments(m, d.value);
      d.expected_cost = costs.under * above + costs.over * below;
      break;
    }
    case CostSpec::Rule::Interval: {
      if (costs.miss_fixed) {
        fixed_miss_interval(m, costs.width_cost, costs.miss_cost, d);
        torch::Tensor point = d.lower == d.upper;  // never covering beats every interval
        if (point.any().item<bool>()) {
          torch::Tensor median = predictive_quantile(p, 0.5).to(at::kDouble);
          d.lower = at::where(point, median, d.lower);
          d.upper = at::where(point, median, d.upper);
        }
        break;
      }
      // d/dl: -width + miss*F(l) = 0 and d/du: width - miss*(1 - F(u)) = 0.
      const double t = costs.width_cost / costs.miss_cost;
      d.lower = predictive_quantile(p, t < 0.5 ? t : 0.5).to(at::kDouble);
      d.upper = t < 0.5 ? predictive_quantile(p, 1 - t).to(at::kDouble) : d.lower.clone();
      torch::Tensor outside_low = partial_moments(m, d.lower).first;
      torch::Tensor outside_high = partial_moments(m, d.upper).second;
      d.expected_cost = costs.width_cost * (d.upper - d.lower) + costs.miss_cost * (outside_low + outside_high);
      break;
    }
  }
  return d;
}

torch::Tensor realized_cost(const Decisions& d, const CostSpec& costs, const torch::Tensor& y) {
  if (costs.task == Task::Classification) {
    if (!d.action.defined()) bad("these decisions are not classification decisions");
    torch::Tensor labels =
        eval_detail::class_labels(y, d.action.size(0), costs.num_classes(), d.action.device(), "realized_cost");
    std::vector<double> flat;
    for (const auto& row : costs.matrix) flat.insert(flat.end(), row.begin(), row.end());
    torch::Tensor L = at::tensor(flat, at::TensorOptions().dtype(at::kDouble)).view({-1, costs.num_classes()});
    return L.to(d.action.device()).index_select(0, d.action).gather(1, labels.unsqueeze(1)).squeeze(1);
  }
  const torch::Tensor& ref = d.value.defined() ? d.value : d.lower;
  torch::Tensor t = eval_detail::regression_targets(y, ref.size(0), ref.device(), "realized_cost");
  switch (costs.rule) {
    case CostSpec::Rule::Squared:
      return (d.value - t).square();
    case CostSpec::Rule::Pinball:
      return costs.under * plus_part(t - d.value) + costs.over * plus_part(d.value - t);
    case CostSpec::Rule::Interval: {
      torch::Tensor width = costs.width_cost * (d.upper - d.lower);
      if (costs.miss_fixed) return width + costs.miss_cost * ((t < d.lower) | (t > d.upper)).to(at::kDouble);
      return width + costs.miss_cost * (plus_part(d.lower - t) + plus_part(t - d.upper));
    }
  }
  return {};
}

}  // namespace credence
