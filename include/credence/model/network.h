#pragma once
/// Networks built from an op list with skip connections: convolutions (stride, padding), group and
/// layer normalization, GELU, residual blocks, patch tokens, token embeddings, position embeddings
/// and multi-head self-attention, all in one functional forward over theta [P] or stacked [S, P]. The resnet and
/// transformer families are op lists; so is any network defined in code, which a posterior file
/// then rebuilds from its architecture() (see make_network).
#include "credence/model/model.h"

namespace credence {

struct DropoutMasks;  // src/model/dropout_masks.h

struct NetOp {
  enum Kind {
    Conv,        ///< in -> out channels, kernel, stride, padding
    Linear,      ///< in -> out over the last axis (vectors or tokens)
    GroupNorm,   ///< channels `out` in `groups` groups, with a per-channel scale and shift
    LayerNorm,   ///< over the last axis of size `out`, with a scale and shift
    PosEmbed,    ///< adds a learned [positions, out] table to tokens
    ReLU,
    GELU,
    Save,        ///< slots[slot] = h
    Add,         ///< h = h + slots[slot]
    Swap,        ///< exchange h and slots[slot] (a projection shortcut runs on the saved input)
    Attention,   ///< multi-head self-attention core on [.., T, 3 * dim] queries, keys, values
    ToTokens,    ///< images [N, C, H, W] -> tokens [N, H * W, C]
    MeanTokens,  ///< tokens [N, T, C] -> [N, C]
    GlobalPool,  ///< images [N, C, H, W] -> [N, C] by averaging
    Flatten,     ///< images [N, C, H, W] -> [N, C * H * W]
    ChannelAffine,  ///< images: a per-channel scale and shift (a BatchNorm with frozen statistics, folded)
    MaxPool,     ///< images: max over kernel x kernel windows (stride, padding)
    Embed,       ///< token ids [N, T] (whole numbers in [0, in)) -> tokens [N, T, out] from an [in, out] table
  } kind = Linear;
  std::string name;  ///< parameter name prefix, e.g. "stage1.0.conv1"
  int64_t in = 0, out = 0, kernel = 1, stride = 1, padding = 0;
  int64_t groups = 1;  ///< GroupNorm groups; Attention heads; PosEmbed positions
  int slot = 0;
  bool bias = true;        ///< Conv and Linear: with a bias tensor
  double scale = 1.0;      ///< Conv and Linear: input multiplier (a low-rank adapter's alpha / rank)
  bool zero_init = false;  ///< Conv and Linear: start at zero (an adapter's B factor)
  int weight_block = -1, bias_block = -1;
};

/// An op of `kind` (its parameters named `name`.weight / .bias) from `in` to `out` features.
NetOp net_op(NetOp::Kind kind, std::string name = "", int64_t in = 0, int64_t out = 0);
/// A convolution with a square kernel.
NetOp net_conv(std::string name, int64_t in, int64_t out, int64_t kernel, int64_t stride = 1, int64_t padding = 0);
/// A GroupNorm (`groups` groups) or LayerNorm over `channels`.
NetOp net_norm(NetOp::Kind kind, std::string name, int64_t channels, int64_t groups = 1);

class NetworkModel : public Model,
                     public LastLayerAccess,
                     public DropoutForward,
                     public Architecture,
                     public BlockForward,
                     public TokenInputs {
 public:
  NetworkModel(std::string spec, std::vector<int64_t> input_shape, std::vector<NetOp> ops, torch::Dtype dtype,
               torch::Device device);
  const std::string& spec() const override { return spec_; }
  const ParamLayout& layout() const override { return layout_; }
  const std::vector<int64_t>& input_shape() const override { return input_shape_; }
  int64_t output_dim() const override { return ops_.back().out; }
  torch::Tensor init_params(uint64_t seed) const override;
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& theta, ForwardTrace* trace) const override;
  torch::Dtype dtype() const override { return dtype_; }
  torch::Device device() const override { return device_; }
  torch::Tensor features(const torch::Tensor& x, const torch::Tensor& theta) const override;
  LastLayer last_layer() const override;
  /// Dropout on the input of the final linear layer only: its other layers are convolutions,
  /// normalizations and token-wise maps, where per-unit dropout is not the usual predictive.
  torch::Tensor forward_dropout(const torch::Tensor& x, const torch::Tensor& theta, double p, uint64_t key,
                                int64_t row_offset = 0, int64_t total_rows = 0) const override;
  std::vector<std::string> dropout_blocks() const override;
  const Capability* find_capability(const std::type_info& type) const override;
  /// {"input_shape": [...], "ops": [{"op": "conv", "name": ..., "in": ..., ...}, ...]}
  std::string architecture() const override;
  torch::Tensor forward_blocks(const torch::Tensor& x, const std::vector<torch::Tensor>& blocks,
                               ForwardTrace* trace) const override;
  /// Offered when the first op is an embedding.
  int64_t vocab() const override { return ops_.front().in; }

 private:
  torch::Tensor run(const torch::Tensor& x, const torch::Tensor& theta, size_t num_ops, ForwardTrace* trace,
                    DropoutMasks* dropout = nullptr) const;
  torch::Tensor run_blocks(const torch::Tensor& x, const std::vector<torch::Tensor>& parts, size_t num_ops,
                           ForwardTrace* trace, DropoutMasks* dropout) const;
  std::string spec_;
  std::vector<int64_t> input_shape_;
  std::vector<NetOp> ops_;
  int num_slots_ = 1;
  ParamLayout layout_;
  torch::Dtype dtype_;
  torch::Device device_;
};

/// A network from its op list, named `spec` (any text; a posterior file rebuilds the network
/// from its ops, not from the name). InvalidArgument for ops that do not fit together.
std::shared_ptr<Model> make_network(const std::string& spec, const std::vector<int64_t>& input_shape,
                                    std::vector<NetOp> ops, torch::Dtype dtype = torch::kFloat32,
                                    torch::Device device = torch::kCPU);
/// What NetworkModel::architecture() describes.
struct NetworkDescription {
  std::vector<int64_t> input_shape;
  std::vector<NetOp> ops;
};
NetworkDescription parse_architecture(const std::string& spec, const std::string& architecture);
/// Rebuilds a network from NetworkModel::architecture().
std::shared_ptr<Model> network_from_architecture(const std::string& spec, const std::string& architecture,
                                                 torch::Dtype dtype, torch::Device device);

/// resnet:DEPTH?width=W&groups=G: a pre-activation ResNet for [C, H, W] images.
std::shared_ptr<Model> make_resnet(const std::string& spec, const std::vector<int64_t>& input_shape,
                                   int64_t output_dim, torch::Dtype dtype, torch::Device device);
/// transformer:LAYERS?dim=D&heads=H&patch=P&mlp=R: a ViT-style encoder over image patches; over
/// sequences of token ids [T] with ?vocab=V.
std::shared_ptr<Model> make_transformer(const std::string& spec, const std::vector<int64_t>& input_shape,
                                        int64_t output_dim, torch::Dtype dtype, torch::Device device);

}  // namespace credence
