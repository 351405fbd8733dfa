#include "members.h"

#include <fmt/format.h>

#include "credence/core/error.h"
#include "credence/core/options.h"
#include "credence/core/spec.h"
#include "credence/core/rng.h"
#include "credence/methods/method.h"
#include "credence/posterior/members.h"

namespace credence {

std::pair<std::string, int64_t> split_members(const std::string& method) {
  auto spec = MethodSpec::parse(method);
  auto it = spec.values.find("members");
  if (it == spec.values.end()) return {method, 0};
  for (const auto& field : find_method(spec.name).fields)
    if (field.name == "members") return {method, 0};  // the method's own members
  const long members = parse_int(it->second, fmt::format("{}: members", spec.name));
  if (members < 2)
    throw InvalidArgument(fmt::format("{}: members must be >= 2 (independent fits mixed into one posterior), got {}",
                                      spec.name, members));
  spec.values.erase(it);
  return {spec.str(), members};
}

std::pair<const MethodInfo*, Options> resolve_fit_method(const std::string& spec) {
  return resolve_method(split_members(spec).first);
}

FittedModel fit_members(const FitRequest& request, const std::string& method, int64_t members) {
  const auto spec = MethodSpec::parse(method);
  if (!find_method(spec.name).uses_network)
    throw InvalidArgument(fmt::format("{} does not use a network: members= mixes fits of networks", spec.name));
  if (auto subset = spec.values.find("subset");
      subset != spec.values.end() && (subset->second.rfind("pca:", 0) == 0 || subset->second.rfind("random:", 0) == 0))
    throw InvalidArgument(fmt::format("{}: members= and subset={} do not go together: each member would have its own "
                                      "subspace",
                                      spec.name, subset->second));
  std::vector<std::shared_ptr<Posterior>> posteriors;
  std::vector<double> sigmas;
  nlohmann::json seeds = nlohmann::json::array(), runs = nlohmann::json::array();
  double seconds = 0;
  FittedModel first;
  for (int64_t m = 0; m < members; ++m) {
    FitRequest r = request;
    r.method = method;
    r.train.seed = m == 0 ? request.train.seed : rng_key(request.train.seed, Stream::Init, 3, m);
    if (m > 0) {  // a given MAP is member 0's; the others fit their own from their seeds
      r.map = nullptr;
      r.train.quiet = true;
    }
    FittedModel f = fit(r);
    posteriors.push_back(f.posterior);
    sigmas.push_back(f.likelihood.sigma);
    seeds.push_back(r.train.seed);
    seconds += f.info.value("fit_seconds", 0.0);
    runs.push_back(f.info);
    if (m == 0) first = std::move(f);
  }
  FittedModel result = first;
  result.method = request.method;
  result.posterior = std::make_shared<MembersPosterior>(std::move(posteriors), std::move(sigmas));
  result.info["fit_seconds"] = seconds;
  result.info["members"] = {{"count", members}, {"seeds", seeds}, {"member_info", runs}};
  return result;
}

}  // namespace credence
