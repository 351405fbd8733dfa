#pragma once
/// Low-rank adapters (LoRA, Hu et al. 2022) on a network's convolutional and linear layers. Each
/// adapted layer W x becomes W x + (alpha / rank) B A x: A [rank, in] starts at PyTorch's default
/// draw, B [out, rank] at zero, so the adapted network starts exactly as the backbone. The
/// backbone is frozen; the adapter factors (and the head unless head=frozen) are the trainable
/// parameters, so every method (map, laplace, vi, ivon, ensemble, swag, sgld, nuts...) fits them.
#include <memory>
#include <string>
#include <vector>

#include "credence/core/options.h"
#include "credence/model/model.h"

namespace credence {

/// The options of `--adapters lora:...`, for parsing and `credence describe --adapters`.
const std::vector<Field>& lora_fields();

/// The layers adapters can go into (every convolution and linear layer before the head), with
/// their shapes, e.g. "stage1.0.conv1 (conv 16 -> 16, 3x3)". NotSupported for models that are not
/// op-list networks.
std::vector<std::string> adaptable_layers(const Model& model);

/// `backbone` (its init_params(seed) are the backbone weights: wrap it with with_initial_weights
/// for pretrained ones) with adapters as `spec` says: "lora:rank=R,alpha=A,targets=NAMES,head=H".
/// The result's theta holds only the trainable tensors; ensemble members (other seeds) draw
/// other A factors on the same backbone. InvalidArgument for a spec or target that does not fit,
/// naming the adaptable layers.
std::shared_ptr<Model> add_adapters(std::shared_ptr<Model> backbone, const std::string& spec, uint64_t seed);

/// Whether an --adapters spec asks for a new head (head=new), which --init must not supply;
/// false for "" (no adapters). InvalidArgument for a bad spec.
bool draws_new_head(const std::string& spec);

/// The named weights of an adapted network (`architecture`: its Architecture JSON) with each
/// adapter folded into its layer, W + (alpha / rank) B A, and the factors dropped.
std::vector<std::pair<std::string, torch::Tensor>> merge_adapters(
    const std::string& architecture, std::vector<std::pair<std::string, torch::Tensor>> weights);

}  // namespace credence
