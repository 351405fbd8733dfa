#pragma once
/// Networks with a functional forward over explicit parameters: a flat vector theta [P], or a
/// stacked set [S, P] (weight samples, members, particles, MCMC draws) evaluated in one pass.
#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <typeinfo>
#include <vector>

namespace credence {

/// One named parameter tensor inside the flat vector.
struct ParamBlock {
  std::string name;            ///< e.g. "layer2.weight"
  std::vector<int64_t> shape;  ///< e.g. {256, 784}
  int64_t offset = 0;          ///< start in theta
  int64_t numel = 0;
  int layer = 0;               ///< index of the parametric layer it belongs to
  /// Kept as the transpose of its PyTorch tensor: an embedding table, PyTorch's [vocab, dim], is
  /// a dense layer's [dim, vocab] acting on one-hot token ids, so curvature treats it as one.
  bool transposed = false;
  /// The tensor's shape in PyTorch (and in state dicts and credence's named weights).
  std::vector<int64_t> torch_shape() const;
  /// This block's entries of theta [numel] as the PyTorch tensor, and back.
  torch::Tensor to_torch(const torch::Tensor& entries) const;
  torch::Tensor from_torch(const torch::Tensor& tensor) const;
};

/// How a parametric layer's parameters act, which fixes its Jacobian (see ParamSubset):
/// Dense: y = W a + b over the last axis (a linear layer; a convolution over unfolded patches),
/// applied at T positions that share the weights; Scale: y = w * a + b per channel (the affine part
/// of a normalization, a being the normalized input); Shift: y = x + w (a learned position
/// embedding, one block of shape [T, C]).
enum class LayerKind { Dense, Scale, Shift };

struct ParamLayout {
  std::vector<ParamBlock> blocks;
  int64_t size = 0;       ///< P
  int num_layers = 0;     ///< parametric layers
  /// Each parametric layer's kind; empty when the model does not trace its layers (TorchScript).
  std::vector<LayerKind> kinds;
  std::vector<int64_t> numels() const;
  const ParamBlock& find(const std::string& name) const;
};

/// What curvature methods need from each parametric layer, since LibTorch C++ modules have no
/// forward hooks: the layer's input and its (differentiable) output. Dense layers record their
/// input a as [N, in], or [N, T, in] when T positions share the weights (a convolution records its
/// unfolded patches); Scale layers record the normalized input [N, C] or [N, T, C]; Shift layers
/// an undefined tensor. Outputs are [N, out], [N, T, out] or images [N, out, H, W].
struct ForwardTrace {
  std::vector<torch::Tensor> inputs;
  std::vector<torch::Tensor> outputs;
  std::vector<torch::Tensor> scratch;  ///< backward()'s buffers, reused with the trace
};

/// The final linear layer: output = features @ W^T + b.
struct LastLayer {
  int64_t weight_block = -1, bias_block = -1;  ///< indices into layout().blocks (-1: none)
  int64_t in_features = 0, out_features = 0;
};

/// Optional abilities a method may ask a model for (see Model::find / Model::require). A model
/// implements only what it can; a method that needs one says which the model lacks.
class Capability {
 public:
  virtual ~Capability() = default;
};

/// Penultimate features and the final linear layer (last-layer methods).
class LastLayerAccess : public Capability {
 public:
  static constexpr const char* kName = "penultimate features and a final linear layer";
  static constexpr const char* kHint =
      "credence's own models have them; a TorchScript module needs a `features(x)` method (marked "
      "@torch.jit.export) whose output feeds a final nn.Linear registered last";
  /// theta [P] -> [N, F]; theta [S, P] -> [S, N, F].
  virtual torch::Tensor features(const torch::Tensor& x, const torch::Tensor& theta) const = 0;
  virtual LastLayer last_layer() const = 0;
};

/// MC dropout's training and predictive forward.
class DropoutForward : public Capability {
 public:
  static constexpr const char* kName = "a dropout forward";
  static constexpr const char* kHint = "models built from credence's own layers (mlp, cnn) have it";
  /// forward() with inverted dropout at rate `p` on the input of every fully connected layer:
  /// masks per example (and per stacked set) drawn from cpu_generator(key), kept inputs scaled
  /// by 1/(1-p). With `total_rows` > 0, `x` is rows [row_offset, row_offset + N) of a batch of
  /// `total_rows` and gets those rows' masks of that batch (a shard of a data-parallel minibatch).
  virtual torch::Tensor forward_dropout(const torch::Tensor& x, const torch::Tensor& theta, double p, uint64_t key,
                                        int64_t row_offset = 0, int64_t total_rows = 0) const = 0;
  /// Names of the weight blocks [out, in] whose input columns forward_dropout drops.
  virtual std::vector<std::string> dropout_blocks() const = 0;
};

/// A per-example Gaussian weight forward (VI's local reparameterization).
class GaussianForward : public Capability {
 public:
  static constexpr const char* kName = "a per-example Gaussian forward";
  static constexpr const char* kHint = "models built from credence's own layers (mlp, cnn) have it";
  /// Outputs [N, O] for independent Gaussian parameters N(mean, sd^2) drawn per example, with
  /// noise from cpu_generator(key): linear layers sample their pre-activations from the exact
  /// Gaussian (local reparameterization), convolutions use Flipout's sign flips of one shared
  /// perturbation. Both give each example the marginal of its own weight draw, with lower
  /// gradient variance than one draw shared by the batch.
  virtual torch::Tensor forward_gaussian(const torch::Tensor& x, const torch::Tensor& mean, const torch::Tensor& sd,
                                         uint64_t key) const = 0;
};

/// A hand-written backward pass over reused buffers (full-batch samplers' inner loop).
class HandBackward : public Capability {
 public:
  static constexpr const char* kName = "a hand-written backward pass";
  static constexpr const char* kHint = "fully connected models built from credence's own layers (mlp) have it";
  /// forward(x, theta [P], &trace) that writes into the buffers `trace` holds from an earlier
  /// call with inputs of the same shape: repeated full-batch passes allocate nothing, which is
  /// most of their cost on small networks. Outputs alias the trace.
  virtual torch::Tensor forward_reusing(const torch::Tensor& x, const torch::Tensor& theta,
                                        ForwardTrace& trace) const = 0;
  /// Writes the gradient of sum(out * grad_out) with respect to theta into `grad` [P], by hand
  /// from the trace of forward_reusing() at the same theta (overwriting grad_out).
  virtual void backward(ForwardTrace& trace, const torch::Tensor& theta, torch::Tensor& grad_out,
                        torch::Tensor& grad) const = 0;
};

/// The forward over one tensor per parameter block (layout order) instead of one theta, so a
/// wrapper can pass some blocks as constants: a frozen backbone then has no weight gradient
/// computed at all, and its leading ops run once for every stacked set.
class BlockForward : public Capability {
 public:
  static constexpr const char* kName = "a per-block forward";
  static constexpr const char* kHint = "networks built from credence's op list (NetworkModel) have it";
  /// blocks[i]: [numel_i], or [S, numel_i] for S stacked parameter sets (all blocks alike); as
  /// forward(x, theta, trace) with theta their concatenation.
  virtual torch::Tensor forward_blocks(const torch::Tensor& x, const std::vector<torch::Tensor>& blocks,
                                       ForwardTrace* trace) const = 0;
};

/// Checks blocks for forward_blocks against `layout` (InvalidArgument naming the block and the
/// shape it needs); returns their dimension, 1 or 2.
int64_t check_blocks(const ParamLayout& layout, const std::string& spec, const std::vector<torch::Tensor>& blocks);

/// Output-space directions [n, O, D] given the outputs [n, O]: the curvature's come from the
/// likelihood at those outputs, so one forward pass serves both.
using OutputDirections = std::function<torch::Tensor(const torch::Tensor& outputs)>;

/// The outputs' gradients in every layer's pre-activation for several output directions at
/// once, by hand: what the Laplace curvature and its GLM predictive need, without one autograd
/// pass per direction (most of their cost on small batches).
class LayerJacobian : public Capability {
 public:
  static constexpr const char* kName = "a hand-written layer Jacobian";
  static constexpr const char* kHint = "fully connected models built from credence's own layers (mlp) have it";
  /// forward(x, theta [P], &trace) without autograd; then, for directions(outputs) [n, O, D], the
  /// gradient of each direction's product with the outputs with respect to each traced
  /// pre-activation: grads[j] [n, D, out_j] for trace.outputs[j]. Returns the outputs [n, O].
  virtual torch::Tensor forward_jacobian(const torch::Tensor& x, const torch::Tensor& theta,
                                         const OutputDirections& directions, ForwardTrace& trace,
                                         std::vector<torch::Tensor>& grads) const = 0;
};

/// A self-description from which the model can be rebuilt: a network defined in code (no --model
/// spec rebuilds it) still round-trips through a posterior file. JSON text, see network.h.
class Architecture : public Capability {
 public:
  static constexpr const char* kName = "an architecture description";
  static constexpr const char* kHint = "networks built from credence's op list (NetworkModel) have it";
  virtual std::string architecture() const = 0;
};

/// Inputs that are token ids, whole numbers in [0, vocab), not measurements: a fit keeps them as
/// they are instead of standardizing them.
class TokenInputs : public Capability {
 public:
  static constexpr const char* kName = "token-id inputs";
  static constexpr const char* kHint = "networks that start with an embedding (transformer:L?vocab=V) have it";
  virtual int64_t vocab() const = 0;
};

/// The core every model implements: a parameter layout and a functional forward. Everything else
/// is a Capability that a method asks for.
class Model {
 public:
  virtual ~Model() = default;
  /// The --model spec it was built from.
  virtual const std::string& spec() const = 0;
  virtual const ParamLayout& layout() const = 0;
  virtual const std::vector<int64_t>& input_shape() const = 0;
  virtual int64_t output_dim() const = 0;
  /// Fresh parameters [P] with PyTorch's default initialization, drawn from `seed`.
  virtual torch::Tensor init_params(uint64_t seed) const = 0;
  /// theta [P] -> outputs [N, O]; theta [S, P] -> [S, N, O], with x shared [N, ...] or one
  /// input set per parameter vector [S, N, ...]. Records layer inputs/outputs into `trace` when
  /// given (single theta only).
  virtual torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& theta,
                                ForwardTrace* trace = nullptr) const = 0;
  virtual torch::Dtype dtype() const = 0;
  virtual torch::Device device() const = 0;

  /// The model's capability C, or nullptr when it lacks it.
  template <class C>
  const C* find() const {
    return dynamic_cast<const C*>(find_capability(typeid(C)));
  }
  /// The model's capability C, or NotSupported saying that `who` (e.g. "mcdropout") needs it,
  /// that this model lacks it, and which models have it.
  template <class C>
  const C& require(const std::string& who) const {
    if (const C* c = find<C>()) return *c;
    throw_missing(who, C::kName, C::kHint);
  }

  /// Identifies the architecture (spec, input shape, output size, parameter names and shapes);
  /// a posterior saved for one model is refused by another.
  std::string fingerprint() const;

  /// The object implementing capability `type` (usually this model), or nullptr (the default).
  /// Use find<C>() or require<C>(); a model that wraps another passes this through.
  virtual const Capability* find_capability(const std::type_info& type) const { return nullptr; }

 private:
  [[noreturn]] void throw_missing(const std::string& who, const char* name, const char* hint) const;
};

/// A family of models, `NAME:BODY[?key=value&...]` on the command line. Families register in
/// model_registry() with one line each, as methods do; `credence describe --models` lists them.
struct ModelFamily {
  std::string name;     ///< the spec's scheme, e.g. "mlp"
  std::string usage;    ///< e.g. "mlp:H1,H2,...[?act=relu|tanh]"
  std::string summary;  ///< one line: what it is and which capabilities it has
  std::vector<std::pair<std::string, std::string>> options;  ///< ?key=value options and their meaning
  std::function<std::shared_ptr<Model>(const std::string& spec, const std::vector<int64_t>& input_shape,
                                       int64_t output_dim, torch::Dtype dtype, torch::Device device)>
      make;
};
const std::vector<ModelFamily>& model_registry();
/// The family named `name`; InvalidArgument listing the known ones otherwise.
const ModelFamily& find_model_family(const std::string& name);

/// Builds a model from a --model spec through its family (see model_registry()): mlp, cnn,
/// torchscript. Unknown options are refused with the family's known ones.
std::shared_ptr<Model> make_model(const std::string& spec, const std::vector<int64_t>& input_shape,
                                  int64_t output_dim, torch::Dtype dtype = torch::kFloat32,
                                  torch::Device device = torch::kCPU);

}  // namespace credence
