#pragma once
/// Pretrained weights by parameter name: from a PyTorch state_dict saved with torch.save, or from
/// any named tensors, into a model's flat theta; and a model that starts from them.
#include <torch/types.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "credence/model/model.h"

namespace credence {

/// Named tensors in their file's order.
using NamedWeights = std::vector<std::pair<std::string, torch::Tensor>>;

/// The tensors of a dict saved with torch.save (a module's state_dict), in order. IoError when
/// the file is not such an archive.
NamedWeights load_state_dict(const std::string& path);

/// `theta` [P] as `model`'s named parameter tensors, in layout order.
NamedWeights named_weights(const Model& model, const torch::Tensor& theta);

/// theta [P] for `model` from `weights`: every parameter by its name, with its shape. Names that
/// are missing, unexpected or wrongly shaped are an InvalidArgument listing each, never a partial
/// load. When no name matches but the tensors line up one to one in order and shape (e.g. an
/// nn.Sequential's "0.weight" for credence's "layer0.weight"), they load by position with a note
/// on stderr naming the pairs. Non-parameter entries (BatchNorm's running statistics) must not
/// be present. `source` names the file in messages.
torch::Tensor weights_to_theta(const Model& model, const NamedWeights& weights, const std::string& source);

/// A model like `inner` whose init_params(seed) is `theta` for every seed: training starts from
/// pretrained weights (as a TorchScript module's own weights do). Spec, layout, forward and
/// capabilities are `inner`'s, so posteriors save and load as `inner`'s. The blocks listed in
/// `seeded_blocks` (indices into the layout) still take `inner`'s seeded draw, so ensemble
/// members differ there (e.g. new adapters on pretrained weights).
std::shared_ptr<Model> with_initial_weights(std::shared_ptr<Model> inner, torch::Tensor theta,
                                           std::vector<int> seeded_blocks = {});

/// A model like `inner` that starts at a prior's mean: init_params(anchor_seed) is `mean`, and any
/// other seed draws from N(mean, sd^2) (so ensemble members and chains start apart, as draws
/// from the prior).
std::shared_ptr<Model> with_prior_start(std::shared_ptr<Model> inner, const torch::Tensor& mean,
                                        const torch::Tensor& sd, uint64_t anchor_seed);

}  // namespace credence
