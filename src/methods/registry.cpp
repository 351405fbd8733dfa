#include <ATen/ATen.h>
#include <fmt/format.h>

#include "credence/core/error.h"
#include "credence/core/rng.h"
#include "credence/methods/ensemble.h"
#include "credence/methods/gp.h"
#include "credence/methods/hmc.h"
#include "credence/methods/ivon.h"
#include "credence/methods/pacbayes.h"
#include "credence/methods/laplace.h"
#include "credence/methods/map.h"
#include "credence/methods/mcdropout.h"
#include "credence/methods/method.h"
#include "credence/methods/particles.h"
#include "credence/methods/sgmcmc.h"
#include "credence/methods/swag.h"
#include "credence/methods/vi.h"

namespace credence {

StepInfo Method::step(const Batch&) { throw NotSupported("this method has no training steps"); }

void TrainOptions::validate() const {
  // 0 is for library callers that start from given weights; the command line requires >= 1.
  if (epochs < 0) throw InvalidArgument(fmt::format("--epochs must be >= 0, got {}", epochs));
  if (batch_size < 1) throw InvalidArgument(fmt::format("--batch-size must be >= 1, got {}", batch_size));
  if (!(lr >= 0)) throw InvalidArgument(fmt::format("--lr must be > 0 (or 0 for the method's default), got {}", lr));
}

torch::Tensor member_init_params(const Model& model, uint64_t seed, int64_t members) {
  std::vector<torch::Tensor> inits;
  for (int64_t m = 0; m < members; ++m) inits.push_back(model.init_params(m == 0 ? seed : rng_key(seed, Stream::Init, 1, m)));
  return at::stack(inits);
}

torch::Tensor map_params(const Problem& problem, const std::string& method) {
  auto* point = problem.map ? dynamic_cast<const ParticlePosterior*>(problem.map->posterior.get()) : nullptr;
  if (!point || point->particles().size(0) != 1)
    throw InvalidArgument(fmt::format("{}: init=map needs a MAP fit (one parameter vector) to start from", method));
  return point->particles()[0].detach().clone();
}

const std::vector<MethodInfo>& method_registry() {
  static const std::vector<MethodInfo> registry = {
      map_method_info(),
      laplace_method_info(),
      ensemble_method_info(),
      svgd_method_info(),
      repulsive_method_info(),
      swag_method_info(),
      multiswag_method_info(),
      mcdropout_method_info(),
      nuts_method_info(),
      hmc_method_info(),
      ess_method_info(),
      sgld_method_info(),
      sghmc_method_info(),
      psgld_method_info(),
      csgmcmc_method_info(),
      ivon_method_info(),
      vi_method_info(),
      pacbayes_method_info(),
      gp_method_info(),
  };
  return registry;
}

const MethodInfo& find_method(const std::string& name) {
  std::vector<std::string> names;
  for (const auto& m : method_registry()) {
    if (m.name == name) return m;
    names.push_back(m.name);
  }
  throw InvalidArgument(fmt::format("unknown method '{}' (known: {}; see `credence describe`)", name,
                                    fmt::join(names, ", ")));
}

std::pair<const MethodInfo*, Options> resolve_method(const std::string& text) {
  auto spec = MethodSpec::parse(text);
  const auto& info = find_method(spec.name);
  Options options(info.name, info.fields, spec.values);
  if (info.validate) info.validate(options);
  return {&info, options};
}

}  // namespace credence
