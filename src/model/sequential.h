#pragma once
// Credence's own layers (linear, conv, pool, activations) as one sequence with a functional forward.
#include "credence/model/model.h"

namespace credence {

struct DropoutMasks;  // src/model/dropout_masks.h

struct LayerDef {
  enum Kind { Linear, Conv, MaxPool, Flatten, ReLU, Tanh } kind;
  int64_t in = 0, out = 0, kernel = 0, padding = 0;
  int weight_block = -1, bias_block = -1;
};

class SequentialModel : public Model,
                        public LastLayerAccess,
                        public DropoutForward,
                        public GaussianForward,
                        public BlockForward,
                        public HandBackward,
                        public LayerJacobian {
 public:
  SequentialModel(std::string spec, std::vector<int64_t> input_shape, std::vector<LayerDef> layers,
                  torch::Dtype dtype, torch::Device device);
  const std::string& spec() const override { return spec_; }
  const ParamLayout& layout() const override { return layout_; }
  const std::vector<int64_t>& input_shape() const override { return input_shape_; }
  int64_t output_dim() const override { return output_dim_; }
  torch::Tensor init_params(uint64_t seed) const override;
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& theta,
                        ForwardTrace* trace) const override;
  torch::Tensor forward_dropout(const torch::Tensor& x, const torch::Tensor& theta, double p, uint64_t key,
                                int64_t row_offset = 0, int64_t total_rows = 0) const override;
  std::vector<std::string> dropout_blocks() const override;
  torch::Tensor forward_gaussian(const torch::Tensor& x, const torch::Tensor& mean, const torch::Tensor& sd,
                                 uint64_t key) const override;
  torch::Tensor forward_reusing(const torch::Tensor& x, const torch::Tensor& theta,
                                ForwardTrace& trace) const override;
  torch::Tensor forward_blocks(const torch::Tensor& x, const std::vector<torch::Tensor>& blocks,
                               ForwardTrace* trace) const override;
  void backward(ForwardTrace& trace, const torch::Tensor& theta, torch::Tensor& grad_out,
                torch::Tensor& grad) const override;
  torch::Tensor forward_jacobian(const torch::Tensor& x, const torch::Tensor& theta,
                                 const OutputDirections& directions, ForwardTrace& trace,
                                 std::vector<torch::Tensor>& grads) const override;
  torch::Tensor features(const torch::Tensor& x, const torch::Tensor& theta) const override;
  LastLayer last_layer() const override;
  torch::Dtype dtype() const override { return dtype_; }
  torch::Device device() const override { return device_; }

 const Capability* find_capability(const std::type_info& type) const override;

 private:
  bool fully_connected() const;  ///< the hand-written backward covers linear layers and activations
  /// The linear layers' weights of stacked parameters [S, P] as contiguous [S, in, out] tensors.
  /// A weight block of [S, P] is strided by P between vectors, which makes each batched product
  /// copy it (~7x the product's cost at batch size one). Parameters seen twice without change (a
  /// posterior's kept draws) are laid out once and reused; others are used as they are.
  std::vector<torch::Tensor> stacked_weights(const torch::Tensor& theta, const std::vector<torch::Tensor>& parts) const;
  struct StackedCache;
  std::shared_ptr<StackedCache> stacked_cache_;
  torch::Tensor run(const torch::Tensor& x, const torch::Tensor& theta, size_t num_layers,
                    ForwardTrace* trace, DropoutMasks* dropout = nullptr) const;
  /// run() on theta's blocks [numel_i] or [S, numel_i], with the stacked linear weights [S, in, out].
  torch::Tensor run_parts(const torch::Tensor& x, const std::vector<torch::Tensor>& parts,
                          const std::vector<torch::Tensor>& weights, size_t num_layers, ForwardTrace* trace,
                          DropoutMasks* dropout) const;
  std::string spec_;
  std::vector<int64_t> input_shape_;
  std::vector<LayerDef> layers_;
  ParamLayout layout_;
  int64_t output_dim_ = 0;
  torch::Dtype dtype_;
  torch::Device device_;
};

/// mlp:H1,H2,...?act=relu|tanh
std::shared_ptr<Model> make_mlp(const std::string& spec, const std::vector<int64_t>& input_shape,
                                int64_t output_dim, torch::Dtype dtype, torch::Device device);
/// cnn:lenet
std::shared_ptr<Model> make_cnn(const std::string& spec, const std::vector<int64_t>& input_shape,
                                int64_t output_dim, torch::Dtype dtype, torch::Device device);
/// torchscript:PATH
std::shared_ptr<Model> make_torchscript(const std::string& spec, const std::vector<int64_t>& input_shape,
                                        int64_t output_dim, torch::Dtype dtype, torch::Device device);

}  // namespace credence
