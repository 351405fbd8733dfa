#include "credence/posterior/members.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <cmath>

#include "credence/core/error.h"
#include "credence/core/rng.h"

namespace credence {
namespace {
// The member's own key: members draw independently of each other and of the caller's seed use.
uint64_t member_seed(uint64_t seed, size_t m) { return rng_key(seed, Stream::Sample, 101, m); }

// Component weights [S] of a predictive or of a posterior's draws (uniform when undefined).
torch::Tensor or_uniform(const torch::Tensor& w, int64_t S, const at::TensorOptions& options) {
  return w.defined() ? w.to(options) : at::full({S}, 1.0 / static_cast<double>(S), options);
}
}  // namespace

MembersPosterior::MembersPosterior(std::vector<std::shared_ptr<Posterior>> members, std::vector<double> sigmas)
    : members_(std::move(members)), sigmas_(std::move(sigmas)) {
  if (members_.empty() || sigmas_.size() != members_.size())
    throw InvalidArgument(fmt::format("a mixture of members needs one noise level per member: {} members, {} levels",
                                      members_.size(), sigmas_.size()));
}

torch::Tensor MembersPosterior::sample(int64_t n, uint64_t seed) const {
  const auto M = static_cast<int64_t>(members_.size());
  const int64_t each = std::max<int64_t>(1, static_cast<int64_t>(std::llround(static_cast<double>(n) / M)));
  std::vector<torch::Tensor> draws, weights;
  for (size_t m = 0; m < members_.size(); ++m) {
    auto d = members_[m]->sample(each, member_seed(seed, m));
    weights.push_back(or_uniform(members_[m]->weights(), d.size(0), d.options()) / static_cast<double>(M));
    draws.push_back(std::move(d));
  }
  std::lock_guard<std::mutex> lock(weights_mutex_);
  sample_weights_ = at::cat(weights);
  return at::cat(draws);
}

torch::Tensor MembersPosterior::weights() const {
  std::lock_guard<std::mutex> lock(weights_mutex_);
  return sample_weights_;
}

Predictive mix_predictives(const std::vector<Predictive>& parts) {
  if (parts.empty()) throw InvalidArgument("a mixture of no predictives");
  const double share = 1.0 / static_cast<double>(parts.size());
  Predictive out;
  out.task = parts.front().task;
  std::vector<torch::Tensor> weights;
  if (out.task == Task::Classification) {
    std::vector<torch::Tensor> probs;
    for (const auto& p : parts) {
      auto sp = p.sample_probs.defined() ? p.sample_probs : p.probs.unsqueeze(0);
      probs.push_back(sp);
      weights.push_back(or_uniform(p.weights, sp.size(0), sp.options()) * share);
      out.probs = out.probs.defined() ? out.probs + share * p.probs : share * p.probs;
    }
    out.sample_probs = at::cat(probs);
  } else {
    std::vector<torch::Tensor> means, vars;
    torch::Tensor second;
    for (const auto& p : parts) {
      // Without components a predictive is the one Gaussian N(mean, var).
      auto m = p.sample_mean.defined() ? p.sample_mean : p.mean.unsqueeze(0);
      auto v = p.sample_mean.defined() ? p.sample_var : p.var.unsqueeze(0);
      means.push_back(m);
      vars.push_back(v);
      weights.push_back(or_uniform(p.weights, m.size(0), m.options()) * share);
      out.mean = out.mean.defined() ? out.mean + share * p.mean : share * p.mean;
      auto s = share * (p.var + p.mean * p.mean);
      second = second.defined() ? second + s : s;
    }
    out.var = (second - out.mean * out.mean).clamp_min(0);
    out.sample_mean = at::cat(means);
    out.sample_var = at::cat(vars);
  }
  out.weights = at::cat(weights);
  return out;
}

Predictive MembersPosterior::predict(const Model& model, const Likelihood& likelihood, const torch::Tensor& x,
                                     double y_mean, double y_std, const PredictOptions& options) const {
  std::vector<Predictive> parts;
  for (size_t m = 0; m < members_.size(); ++m) {
    Likelihood own = likelihood;
    own.sigma = sigmas_[m];
    PredictOptions o = options;
    o.seed = member_seed(options.seed, m);
    parts.push_back(members_[m]->predict(model, own, x, y_mean, y_std, o));
  }
  return mix_predictives(parts);
}

void MembersPosterior::save(TensorMap& tensors, nlohmann::json& meta) const {
  nlohmann::json list = nlohmann::json::array();
  for (size_t m = 0; m < members_.size(); ++m) {
    TensorMap own;
    nlohmann::json own_meta = {{"posterior_kind", members_[m]->kind()}, {"sigma", sigmas_[m]}};
    members_[m]->save(own, own_meta);
    for (auto& [name, t] : own) tensors[fmt::format("member{}.{}", m, name)] = t;
    list.push_back(own_meta);
  }
  meta["members"] = list;
}

std::unique_ptr<MembersPosterior> MembersPosterior::load(const TensorMap& tensors, const nlohmann::json& meta,
                                                         const Model& model) {
  if (!meta.contains("members") || !meta["members"].is_array() || meta["members"].empty())
    throw IoError("posterior file of kind 'members' lists no members");
  std::vector<std::shared_ptr<Posterior>> members;
  std::vector<double> sigmas;
  for (size_t m = 0; m < meta["members"].size(); ++m) {
    const auto& own_meta = meta["members"][m];
    const std::string prefix = fmt::format("member{}.", m);
    TensorMap own;
    for (const auto& [name, t] : tensors)
      if (name.rfind(prefix, 0) == 0) own[name.substr(prefix.size())] = t;
    members.push_back(load_posterior(own, own_meta, model));
    sigmas.push_back(own_meta.at("sigma").get<double>());
  }
  return std::make_unique<MembersPosterior>(std::move(members), std::move(sigmas));
}

}  // namespace credence
