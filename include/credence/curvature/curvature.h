#pragma once
/// Curvature of the summed negative log-likelihood over a parameter subset: the generalized
/// Gauss-Newton (GGN, the Fisher for exponential families) or the empirical Fisher (EF), in a
/// diagonal, Kronecker-factored (KFAC) or full structure. Built from per-layer Jacobian factors
/// (layer inputs and output-direction gradients), never from a dense per-example Jacobian over
/// all parameters.
#include <torch/types.h>

#include <vector>

#include "credence/data/dataset.h"
#include "credence/likelihood/likelihood.h"
#include "credence/model/subset.h"

namespace credence {

class Communicator;

/// GGN: exact generalized Gauss-Newton; EF: empirical Fisher (observed targets); MC: Monte-Carlo
/// Fisher (one target sampled from the model per example: one backward pass instead of C).
enum class CurvatureKind { GGN, EF, MC };
enum class Structure { Diag, Kron, Full, LowRank };
/// KFAC for a layer whose weights T positions share (a convolution over locations, a linear layer
/// over tokens), after Eschenhagen et al. 2023: Expand treats each position as an example (KFC for
/// convolutions); Reduce sums the output gradients and averages the inputs over positions first.
/// Both are exact for one example at one position.
enum class KfacSharing { Expand, Reduce };
KfacSharing parse_kfac_sharing(const std::string& name);
CurvatureKind parse_curvature_kind(const std::string& name);
/// diag, kron, full, or lowrank:K (then `rank` receives K).
Structure parse_structure(const std::string& name, int64_t* rank = nullptr);

/// One block A (x) B of a Kronecker-factored matrix over subset entries [offset, offset + out*in):
/// A [out, out] is the output side summed over the data, B [in, in] the input side averaged over
/// the data (a bias block has in = 1 and B = [[1]]).
struct KronBlock {
  int64_t offset = 0, out = 0, in = 0;
  torch::Tensor A, B;
};

struct Curvature {
  Structure structure = Structure::Kron;
  CurvatureKind kind = CurvatureKind::GGN;
  torch::Tensor full;            ///< [K, K] for Full
  torch::Tensor diag;            ///< [K] for Diag
  std::vector<KronBlock> kron;   ///< for Kron
  torch::Tensor lowrank_vectors; ///< LowRank: [K, r] orthonormal top eigenvectors
  torch::Tensor lowrank_values;  ///< LowRank: [r] their eigenvalues
  int64_t n = 0;                 ///< examples summed over
  /// For the Gaussian likelihood the curvature is computed at unit noise; the posterior divides
  /// it by sigma^noise_power (2 for the GGN, 4 for the EF). 0 for other likelihoods.
  int noise_power = 0;
  double nll = 0.0;              ///< summed NLL at theta (Gaussian: at unit noise)
  double sum_sq_residual = 0.0;  ///< Gaussian: sum of squared residuals at theta
  /// The dense [K, K] matrix (for tests and small subsets).
  torch::Tensor dense() const;
};

/// Per-layer Jacobian factors on a batch, for each layer of the subset: inputs a [n, in] and the
/// gradients of D output-space directions with respect to the layer's pre-activation, g [n, D, out];
/// for layers with positions (SubsetLayer::shared) a [n, T, in] and g [n, D, T, out].
struct LayerFactors {
  torch::Tensor a, g;
};
/// `directions` [n, C, D] are the output-space vectors to backpropagate (the identity gives the
/// Jacobian). Writes the network outputs [n, C] to `outputs` when given.
std::vector<LayerFactors> layer_factors(const Model& model, const ParamSubset& subset, const torch::Tensor& theta,
                                        const torch::Tensor& x, const torch::Tensor& directions,
                                        torch::Tensor* outputs = nullptr);
/// The same with the directions computed from the outputs of the pass itself (for a last-layer
/// subset, the outputs of the last layer on the features).
std::vector<LayerFactors> layer_factors(const Model& model, const ParamSubset& subset, const torch::Tensor& theta,
                                        const torch::Tensor& x, const OutputDirections& directions,
                                        torch::Tensor* outputs = nullptr);

/// S += X^T X for X [rows, d]. On the CPU in float32/float64 it goes through BLAS's syrk (half a
/// GEMM's products), which updates S's upper triangle only: finish with symmetrize_from_upper.
void add_gram_upper(torch::Tensor& S, const torch::Tensor& X);
/// Copies S's upper triangle onto its lower one (where add_gram_upper left it stale).
void symmetrize_from_upper(torch::Tensor& S);

/// The subset's Jacobian J [n, D, K] from its layers' factors, each layer's columns in subset order.
torch::Tensor subset_jacobian(const ParamSubset& subset, const std::vector<LayerFactors>& factors);

/// Output-space factors [n, C, D] per example: for the GGN, L with L L^T = the NLL's Hessian in the
/// outputs (the Fisher for the heteroscedastic head, whose Hessian is indefinite); for the EF, the
/// NLL's gradient in the outputs (D = 1); for MC, that gradient at a target drawn from the model
/// with `key`. Gaussian: at unit noise.
torch::Tensor output_factors(const Likelihood& likelihood, const torch::Tensor& f, const torch::Tensor& y,
                             CurvatureKind kind, uint64_t key = 0);

/// The curvature over `data` (standardized units) at `theta`, in `structure`. Refuses a full
/// matrix that would not fit in memory, naming the structures that will. Rows go in chunks of at
/// most `batch_size`, fewer where one row's layer factors are large, so a chunk's factors stay
/// near 256 MB. With `comm`, each rank takes every world_size-th chunk of rows and the sums are
/// all-reduced (the same result).
Curvature compute_curvature(const Model& model, const Likelihood& likelihood, const ParamSubset& subset,
                            const torch::Tensor& theta, const Dataset& data, Structure structure,
                            CurvatureKind kind, int64_t batch_size = 256, uint64_t seed = 0,
                            const Communicator* comm = nullptr, KfacSharing sharing = KfacSharing::Expand);

/// The factors of one batch for the curvature's output directions; adds the batch's NLL (and
/// Gaussian squared residuals) to `stats` when given. `unit` is the likelihood at unit noise.
std::vector<LayerFactors> curvature_factors(const Model& model, const Likelihood& unit, const ParamSubset& subset,
                                            const torch::Tensor& theta, const torch::Tensor& x, const torch::Tensor& y,
                                            CurvatureKind kind, uint64_t key, Curvature* stats);

/// The top-`rank` eigenpairs of the curvature by block subspace iteration on exact
/// curvature-matrix products (each iteration is one pass over the data; `iterations` passes plus
/// one), computed from the factored Jacobians.
Curvature compute_lowrank_curvature(const Model& model, const Likelihood& likelihood, const ParamSubset& subset,
                                    const torch::Tensor& theta, const Dataset& data, CurvatureKind kind,
                                    int64_t rank, int64_t iterations = 4, int64_t batch_size = 256,
                                    uint64_t seed = 0);

/// Bytes above which a dense K x K matrix is refused.
constexpr double kMaxDenseBytes = 4e9;

}  // namespace credence
