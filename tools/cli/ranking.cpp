#include "ranking.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <set>

#include "credence/core/error.h"
#include "credence/core/options.h"
#include "credence/methods/method.h"

namespace credence::cli {
namespace {

const std::set<std::string> kLower = {"nll", "ece", "mce", "brier", "rmse", "crps", "aurc",
                                      "conformal_set_size", "credible_set_size", "fit_seconds",
                                      "predict_seconds", "rhat", "rhat_max"};
const std::set<std::string> kHigher = {"accuracy", "ess", "ess_tail"};
const std::vector<std::string> kOodScores = {"", "_max_prob", "_mutual_info"};

std::optional<double> number(const Row& row, const std::string& key) {
  auto it = row.find(key);
  if (it == row.end() || !it->second.is_number()) return std::nullopt;
  double v = it->second.get<double>();
  return std::isfinite(v) ? std::optional<double>(v) : std::nullopt;
}

// Mixtures of independent fits usually beat any one of them (deep ensembles over MAP, MoLA over
// Laplace, MultiSWAG over SWAG): the spec that mixes five fits of `method`, where one exists and
// is not already a mixture.
std::string mixture_hint(const std::string& method) {
  try {
    auto spec = MethodSpec::parse(method);
    const auto& info = find_method(spec.name);
    const bool own_members = std::any_of(info.fields.begin(), info.fields.end(),
                                         [](const Field& f) { return f.name == "members"; });
    auto subset = spec.values.find("subset");
    if (!info.uses_network || own_members || spec.values.count("members") ||
        (subset != spec.values.end() &&
         (subset->second.rfind("pca:", 0) == 0 || subset->second.rfind("random:", 0) == 0)))
      return "";
    if (spec.name == "map") return "; to improve on it, try ensemble:members=5 (five fits mixed, about 5x the fit time)";
    if (spec.name == "swag") return "; to improve on it, try multiswag (five SWAG fits mixed, about 5x the fit time)";
    spec.values["members"] = "5";
    return fmt::format("; to improve on it, try {} (five fits mixed, about 5x the fit time)", spec.str());
  } catch (const Error&) {
    return "";  // a row from elsewhere (e.g. a report of an older file) whose method is not known here
  }
}

double cost_seconds(const Row& row) {
  return number(row, "fit_seconds").value_or(0.0) + number(row, "predict_seconds").value_or(0.0);
}

std::string format_value(double v) { return fmt::format("{:.4g}", v); }

// Chains whose R-hat exceeds this have not converged: their numbers are not a posterior's.
constexpr double kRhatConverged = 1.05;
// No R-hat: not a chain method. An infinite or NaN one (null in JSON) is no convergence at all.
bool converged(const Row& row) {
  auto it = row.find("rhat");
  if (it == row.end()) return true;
  auto rhat = number(row, "rhat");
  return rhat && *rhat <= kRhatConverged;
}

}  // namespace

double Criterion::badness(double value) const {
  if (direction == Higher) return -value;
  if (direction == Nominal) return std::abs(value - target);
  return value;
}

std::string Criterion::describe() const {
  if (direction == Higher) return "higher is better";
  if (direction == Nominal) return fmt::format("closest to {} is best", target);
  return "lower is better";
}

Criterion criterion_for(const std::string& key, double level) {
  if (kLower.count(key)) return {key, Criterion::Lower};
  if (kHigher.count(key)) return {key, Criterion::Higher};
  if (key == "coverage_90") return {key, Criterion::Nominal, 0.9};
  if (key == "conformal_coverage" || key == "credible_coverage") return {key, Criterion::Nominal, level};
  for (const auto& s : kOodScores) {
    if (key == "ood_auroc" + s || key == "ood_aupr" + s) return {key, Criterion::Higher};
    if (key == "ood_fpr95" + s) return {key, Criterion::Lower};
  }
  std::string known;
  for (const auto& k : kHigher) known += k + ", ";
  for (const auto& k : kLower) known += k + ", ";
  throw InvalidArgument(fmt::format("--rank-by '{}' is not a result key; use one of {}coverage_90, "
                                    "conformal_coverage, credible_coverage, ood_auroc, ood_aupr, ood_fpr95 "
                                    "(or those with _max_prob / _mutual_info)",
                                    key, known));
}

bool rank_rows(std::vector<Row>& rows, const Criterion& c) {
  std::vector<size_t> order;
  for (size_t i = 0; i < rows.size(); ++i)
    if (number(rows[i], c.key)) order.push_back(i);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return c.badness(*number(rows[a], c.key)) < c.badness(*number(rows[b], c.key));
  });
  for (size_t r = 0; r < order.size(); ++r) rows[order[r]]["rank"] = static_cast<int64_t>(r + 1);
  return !order.empty();
}

std::vector<std::string> ranking_lines(const std::vector<Row>& rows, const Criterion& c) {
  std::vector<const Row*> ranked;
  const Row* map = nullptr;
  for (const auto& row : rows) {
    if (row.count("rank")) ranked.push_back(&row);
    if (row.at("method") == "map") map = &row;
  }
  std::sort(ranked.begin(), ranked.end(),
            [](const Row* a, const Row* b) { return a->at("rank").get<int64_t>() < b->at("rank").get<int64_t>(); });
  auto relative = [&](const std::string& what, double seconds, double map_seconds) {
    if (!map || map_seconds <= 0) return std::string();
    return fmt::format("{:.1f}x MAP's {}", seconds / map_seconds, what);
  };
  std::vector<std::string> lines = {fmt::format("ranking by {} ({}):", c.key, c.describe())};
  size_t width = 0;
  for (const Row* row : ranked) width = std::max(width, row->at("method").get<std::string>().size());
  for (const Row* row : ranked) {
    double cost = cost_seconds(*row);
    std::string rel = map ? relative("cost", cost, cost_seconds(*map)) : "";
    lines.push_back(fmt::format("  {}. {:<{}}  {} {}  cost {:.2f} s (fit {:.2f} + predict {:.2f}){}{}",
                                row->at("rank").get<int64_t>(), row->at("method").get<std::string>(), width,
                                c.key, format_value(*number(*row, c.key)), cost,
                                number(*row, "fit_seconds").value_or(0.0),
                                number(*row, "predict_seconds").value_or(0.0), rel.empty() ? "" : ", " + rel,
                                converged(*row) ? ""
                                                : fmt::format("  NOT CONVERGED (R-hat {} > {}): not recommended",
                                                              number(*row, "rhat") ? format_value(*number(*row, "rhat"))
                                                                                   : std::string("inf"),
                                                              kRhatConverged)));
  }
  auto first_converged = std::find_if(ranked.begin(), ranked.end(), [](const Row* r) { return converged(*r); });
  if (first_converged == ranked.end() && !ranked.empty()) {
    lines.push_back(fmt::format("recommended: none (no method's chains converged: R-hat > {})", kRhatConverged));
  } else if (!ranked.empty()) {
    const Row& best = **first_converged;
    double fit = number(best, "fit_seconds").value_or(0.0);
    std::string rel = map && map != &best ? relative("fit time", fit, number(*map, "fit_seconds").value_or(0.0)) : "";
    if (rel.empty()) rel = fmt::format("fit {:.2f} s", fit);
    lines.push_back(fmt::format("recommended: {} ({} {}; {}){}", best.at("method").get<std::string>(), c.key,
                                format_value(*number(best, c.key)), rel, mixture_hint(best.at("method"))));
  }
  return lines;
}

}  // namespace credence::cli
