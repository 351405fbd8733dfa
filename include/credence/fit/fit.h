#pragma once
/// The shared fit driver: standardization, model construction, epochs, batching, progress,
/// device moves; a method supplies only its math.
#include <string>

#include "credence/methods/method.h"

namespace credence {

struct FitRequest {
  DataParts data;                 ///< raw units; `fit` is fitted on, `val` used for tuning
  std::string model = "mlp:50";   ///< --model spec
  /// A model built in code (e.g. make_network) to use instead of building `model`; its input
  /// shape and output size must suit the data.
  std::shared_ptr<Model> built_model;
  std::string method = "map";     ///< METHOD spec
  std::string likelihood;         ///< "" = the task's default
  /// Pretrained weights to start from (--init): a credence posterior file (its single weight
  /// vector: MAP, Laplace's mode, a Gaussian's mean) or a torch.save state_dict; "" for none.
  std::string init;
  /// Parameters held fixed (--freeze): comma-separated names or dotted prefixes, e.g. "layer0".
  std::string freeze;
  /// Low-rank adapters on a frozen backbone (--adapters), e.g. "lora:rank=4,alpha=8"; see
  /// add_adapters. The backbone is the model with `init`'s weights. "" for none.
  std::string adapters;
  TrainOptions train;
  torch::Device device = torch::kCPU;
  torch::Dtype dtype = torch::kFloat32;
  /// For post-hoc methods: a MAP fit to start from (fitted here when absent).
  const FittedModel* map = nullptr;
  /// The process group of a data-parallel run; nullptr: world_communicator() (from the environment).
  const Communicator* comm = nullptr;
};

FittedModel fit(const FitRequest& request);

/// The NLL of `fitted`'s predictive on labelled data (original units), per example.
double validation_nll(const FittedModel& fitted, const Dataset& data);

/// A METHOD spec as fit() reads it: resolve_method's answer for the spec less the options fit()
/// takes for any method with a network (members=M: M fits from different seeds, one mixture).
std::pair<const MethodInfo*, Options> resolve_fit_method(const std::string& spec);

}  // namespace credence
