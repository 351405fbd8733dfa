#pragma once
/// Which parameters a method treats as random: all, the last layer, or layers by name. Every
/// method that works on a subset (Laplace, VI, HMC) shares it.
#include <torch/types.h>

#include <string>
#include <vector>

#include "credence/model/model.h"

namespace credence {

/// A parametric layer inside a subset. Dense: weight [out, in] (a convolution's flattened) and
/// bias [out]; Scale: weight and bias [out] with in = 1; Shift: one block of out entries, in = 1,
/// no bias.
struct SubsetLayer {
  LayerKind kind = LayerKind::Dense;
  int weight_block = -1, bias_block = -1;
  int64_t out = 0, in = 0;
  int64_t offset = 0;  ///< start of the weight in subset coordinates; the bias follows it
  int model_layer = 0;
  torch::Tensor weight_entries;  ///< chosen weights (o * in + i), or undefined for all of them
  torch::Tensor bias_entries;    ///< chosen biases, or undefined for all of them

  bool partial() const { return weight_entries.defined(); }
  int64_t num_weights() const { return partial() ? weight_entries.numel() : out * in; }
  int64_t num_biases() const { return partial() ? bias_entries.numel() : bias_block < 0 ? 0 : out; }
  int64_t size() const { return num_weights() + num_biases(); }
  /// Whether the layer's factors have a position axis: a [n, T, in], g [n, D, T, out] (weights
  /// shared by T positions; a Scale or Shift layer always has it).
  static bool shared(const torch::Tensor& g) { return g.dim() == 4; }
  /// Jacobian columns of the chosen entries from the layer's factors a [n, in], g [n, D, out]
  /// (or with positions, see shared()): [n, D, size()] (weights, then biases).
  torch::Tensor jacobian_columns(const torch::Tensor& a, const torch::Tensor& g) const;
  /// The same columns written into `out` [n, D, size()] (e.g. this layer's columns of all the
  /// subset's), without the copies that joining separate results takes.
  void jacobian_columns_into(const torch::Tensor& a, const torch::Tensor& g, torch::Tensor out) const;
  /// J V for this layer's rows V [size(), m] of a set of vectors: [n, D, m].
  torch::Tensor jacobian_times(const torch::Tensor& a, const torch::Tensor& g, const torch::Tensor& V) const;
  /// J^T U summed over examples and directions, for U [n, D, m]: [size(), m].
  torch::Tensor jacobian_transpose_times(const torch::Tensor& a, const torch::Tensor& g, const torch::Tensor& U) const;
  /// A whole dense layer's inputs a [n, in] with a column of ones for the bias: [n, in + 1] (a
  /// itself without a bias). Entry (o, i) of the layer multiplies its column i.
  torch::Tensor with_bias_input(const torch::Tensor& a) const;
  /// Subset positions of a whole dense layer's entries as [out, in + 1] (int64 on `device`):
  /// weight (o, i) at offset + o * in + i, and, in the last column, bias o after the weights.
  torch::Tensor entry_index(torch::Device device) const;
};

struct ParamSubset {
  std::string spec;  ///< as given: all, last_layer, names:PATTERN
  bool last_layer = false;
  std::vector<SubsetLayer> layers;
  torch::Tensor index;  ///< int64 [K]: positions in theta, in subset order
  int64_t size = 0;     ///< K

  /// `all`, `last_layer`, or `names:PATTERN` (layers whose parameter names contain PATTERN).
  /// Throws NotSupported naming what the model lacks (features for last_layer; curvature over
  /// convolutions).
  static ParamSubset parse(const std::string& spec, const Model& model);
  /// The parameters at positions `index` of theta (any order; kept sorted), all inside linear
  /// layers: a subnetwork.
  static ParamSubset from_index(const std::string& spec, const Model& model, const torch::Tensor& index);
  /// A saved subset: its spec, and for a subnetwork (chosen from data) its saved `index`.
  static ParamSubset restore(const std::string& spec, const Model& model, const torch::Tensor& index);
  /// Whether some layer is only partly in the subset (then only full and diag structures apply).
  bool partial() const;
  /// One value per subset entry [K] from one value [1] or one per layer [layers.size()]
  /// (differentiable); InvalidArgument for another count.
  torch::Tensor per_entry(const torch::Tensor& values) const;
  /// theta [P] (or [S, P]) restricted to the subset: [K] (or [S, K]).
  torch::Tensor gather(const torch::Tensor& theta) const;
  /// `base` with the subset's entries replaced by `values` [K] (or [S, K], then base expands).
  torch::Tensor scatter(const torch::Tensor& base, const torch::Tensor& values) const;
};

}  // namespace credence
