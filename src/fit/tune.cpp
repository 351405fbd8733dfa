#include "tune.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <set>

#include "credence/core/error.h"
#include "credence/core/options.h"
#include "members.h"

namespace credence {
namespace {

// Patience of every candidate's early stopping: a twentieth of the epoch budget, at least 5. A
// fixed 5 ended long budgets of noisy training (IVON over 400 epochs) before they settled: on the
// validation parts of three UCI sets it chose far worse candidates than 20 did.
int64_t tune_patience(int64_t epochs) { return std::max<int64_t>(5, epochs / 20); }

// One search space for every data set: weight decays from nearly none to strong, and the step
// size a third of, and three times, the method's own.
const std::vector<double> kWeightDecays = {1e-5, 1e-4, 5e-4, 1e-3, 1e-2, 1e-1};
const std::vector<double> kStepFactors = {1.0, 1.0 / 3.0, 3.0};

struct Axis {
  std::string name;
  std::vector<std::string> values;  ///< the first is the starting value
};

std::string number(double v) { return fmt::format("{:.6g}", v); }

std::vector<Axis> search_axes(const MethodInfo& info, const Options& options, const TrainOptions& train) {
  std::vector<Axis> axes;
  if (info.uses_network && !info.post_hoc) {  // post-hoc methods tune the MAP they start from
    if (train.lr == 0) {
      Axis lr{"lr", {}};
      for (double f : kStepFactors) lr.values.push_back(number(f * info.default_lr));
      axes.push_back(lr);
    }
    if (train.prior == "auto") {
      Axis wd{"weight_decay", {number(kDefaultWeightDecay)}};
      for (double v : kWeightDecays)
        if (v != kDefaultWeightDecay) wd.values.push_back(number(v));
      axes.push_back(wd);
    }
  }
  for (const auto& [name, values] : info.tune_space) {
    if (options.given(name)) continue;
    Axis own{name, {}};
    for (const auto& field : info.fields)
      if (field.name == name) own.values.push_back(field.default_value);
    for (const auto& v : values)
      if (v != own.values.front()) own.values.push_back(v);
    axes.push_back(own);
  }
  return axes;
}

FitRequest with_values(FitRequest r, const std::map<std::string, std::string>& values) {
  auto spec = MethodSpec::parse(r.method);
  for (const auto& [name, value] : values) {
    if (name == "lr") {
      r.train.lr = std::stod(value);
    } else if (name == "weight_decay") {
      r.train.prior = fmt::format("gaussian:{:.17g}", std::stod(value) * static_cast<double>(r.data.fit.size()));
    } else {
      spec.values[name] = value;
    }
  }
  r.method = spec.str();
  return r;
}

nlohmann::json as_json(const std::map<std::string, std::string>& values) {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [name, value] : values) {
    char* end = nullptr;
    const double v = std::strtod(value.c_str(), &end);
    out[name] = end && *end == '\0' && !value.empty() ? nlohmann::json(v) : nlohmann::json(value);
  }
  return out;
}

}  // namespace

FittedModel fit_tuned(const FitRequest& given) {
  if (!given.data.val)
    throw InvalidArgument("--tune chooses hyper-parameters on a validation part, never on test data: add "
                          "holdout=val:0.2 to --data");
  const auto start = std::chrono::steady_clock::now();
  auto [single, members] = split_members(given.method);
  auto [info, options] = resolve_method(single);
  FitRequest base = given;
  base.train.tune = false;
  base.method = single;
  if (info->stops_early && base.train.patience == 0) base.train.patience = tune_patience(base.train.epochs);
  nlohmann::json tuned = nlohmann::json::object(), trials = nlohmann::json::array();

  FittedModel tuned_map;
  if (info->starts_from_map(options) && !given.map) {
    FitRequest m = given;
    m.method = "map";
    tuned_map = fit(m);
    base.map = &tuned_map;
  }
  if (const FittedModel* map = base.map; map && map->info.contains("tuned")) {
    // The MAP's values also train any further MAP this fit makes (other members' own).
    std::map<std::string, std::string> map_values;
    for (const auto& [name, value] : map->info.at("tuned").items()) {
      tuned["map." + name] = value;
      if (value.is_number()) map_values[name] = number(value.get<double>());
    }
    base = with_values(base, map_values);
    if (base.train.patience == 0) base.train.patience = tune_patience(base.train.epochs);
  }

  const Dataset& val = *given.data.val;
  std::map<std::string, std::string> best_values;
  std::set<std::string> seen;  // trials by their values, so a point is fitted once
  FittedModel best;
  double best_nll = 0;
  auto evaluate = [&](const std::map<std::string, std::string>& values) {
    const std::string key = as_json(values).dump();
    if (!seen.insert(key).second) return;
    FittedModel f;
    try {
      f = fit(with_values(base, values));
    } catch (const NumericalError& e) {  // e.g. a step too large for this network: the search goes on
      trials.push_back({{"values", as_json(values)}, {"error", e.what()}});
      return;
    }
    const double nll = validation_nll(f, val);
    trials.push_back({{"values", as_json(values)}, {"val_nll", nll}});
    if (!best.posterior || (std::isfinite(nll) && !(nll >= best_nll))) {
      best = std::move(f);
      best_nll = nll;
      best_values = values;
    }
  };
  const auto axes = search_axes(*info, options, given.train);
  std::map<std::string, std::string> start_values;
  for (const auto& axis : axes) start_values[axis.name] = axis.values.front();
  evaluate(start_values);
  for (const auto& axis : axes) {
    const auto current = best_values;
    for (const auto& v : axis.values) {
      auto values = current;
      values[axis.name] = v;
      evaluate(values);
    }
  }
  if (!best.posterior || !std::isfinite(best_nll))
    throw NumericalError(fmt::format("--tune: no candidate of {} gave a finite validation NLL", single));
  if (members > 0) best = fit_members(with_values(base, best_values), single, members);

  const auto chosen = as_json(best_values);
  for (const auto& [name, value] : chosen.items()) tuned[name] = value;
  best.method = given.method;
  best.info["tuned"] = tuned;
  best.info["tuning"] = {{"objective", "validation NLL"}, {"val_nll", best_nll}, {"trials", trials}};
  // A tuned fit costs its whole search (and its MAP's, unless that was given).
  best.info["fit_seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return best;
}

}  // namespace credence
