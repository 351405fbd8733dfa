#include "credence/model/subspace.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include "credence/core/error.h"
#include "credence/core/rng.h"
#include "credence/core/spec.h"

namespace credence {
namespace {

class SubspaceModel : public Model, public Subspace {
 public:
  SubspaceModel(std::shared_ptr<Model> inner, torch::Tensor origin, torch::Tensor basis, torch::Tensor start,
                std::string description)
      : inner_(std::move(inner)), origin_(std::move(origin)), basis_(std::move(basis)), start_(std::move(start)),
        description_(std::move(description)) {
    ParamBlock b;
    b.name = "subspace";
    b.shape = {basis_.size(0)};
    b.numel = basis_.size(0);
    layout_.blocks.push_back(b);
    layout_.size = b.numel;
  }
  const std::string& spec() const override { return inner_->spec(); }
  const ParamLayout& layout() const override { return layout_; }
  const std::vector<int64_t>& input_shape() const override { return inner_->input_shape(); }
  int64_t output_dim() const override { return inner_->output_dim(); }
  torch::Dtype dtype() const override { return inner_->dtype(); }
  torch::Device device() const override { return inner_->device(); }
  torch::Tensor init_params(uint64_t) const override { return start_.clone(); }
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& z, ForwardTrace*) const override {
    if (z.size(-1) != layout_.size)
      throw InvalidArgument(fmt::format("a {}-dimensional subspace of model '{}' got a vector of {}", layout_.size,
                                        spec(), z.size(-1)));
    auto basis = basis_.to(z.scalar_type());
    auto theta = z.dim() == 1 ? origin_.to(z.scalar_type()) + z.matmul(basis)
                              : at::addmm(origin_.to(z.scalar_type()).unsqueeze(0), z, basis);
    return inner_->forward(x, theta, nullptr);
  }
  const std::shared_ptr<Model>& full_model() const override { return inner_; }
  const torch::Tensor& origin() const override { return origin_; }
  const torch::Tensor& basis() const override { return basis_; }
  const std::string& description() const override { return description_; }
  const Capability* find_capability(const std::type_info& type) const override {
    if (type == typeid(Subspace)) return static_cast<const Subspace*>(this);
    return nullptr;  // layers, last layer and dropout live in the full coordinates
  }

 private:
  std::shared_ptr<Model> inner_;
  torch::Tensor origin_, basis_, start_;
  std::string description_;
  ParamLayout layout_;
};

}  // namespace

std::shared_ptr<Model> restrict_to_subspace(std::shared_ptr<Model> inner, torch::Tensor point, torch::Tensor basis,
                                            std::string description) {
  const int64_t P = inner->layout().size;
  if (point.dim() != 1 || point.size(0) != P || basis.dim() != 2 || basis.size(1) != P || basis.size(0) < 1 ||
      basis.size(0) > P)
    throw InvalidArgument(fmt::format("a subspace of model '{}' needs a point [{}] and a basis [K, {}], K <= {}",
                                      inner->spec(), P, P, P));
  auto opts = torch::TensorOptions().dtype(inner->dtype()).device(inner->device());
  auto p = point.detach().to(opts.dtype(at::kDouble));
  auto b = basis.detach().to(opts.dtype(at::kDouble));
  // The origin is the subspace's point nearest zero, so |theta|^2 = |origin|^2 + |z|^2: the
  // weight prior N(0, 1/lambda) restricted to the subspace is N(0, 1/lambda) on z.
  auto start = b.mv(p);
  auto origin = p - b.t().mv(start);
  return std::make_shared<SubspaceModel>(std::move(inner), origin.to(opts), b.to(opts), start.to(opts),
                                         std::move(description));
}

torch::Tensor principal_directions(const torch::Tensor& deviations, int64_t K) {
  if (deviations.dim() != 2 || deviations.size(0) < K)
    throw InvalidArgument(fmt::format("subset=pca:{} needs at least {} collected iterates, got {}; collect more "
                                      "(more epochs) or lower K",
                                      K, K, deviations.dim() == 2 ? deviations.size(0) : 0));
  // Right singular vectors of the deviations: T is small, so through the T x T Gram matrix.
  auto d = deviations.to(at::kDouble);
  auto [s, u] = at::linalg_eigh(d.mm(d.t()));
  auto top = u.flip(1).narrow(1, 0, K);  // [T, K], largest first
  auto s_top = s.flip(0).narrow(0, 0, K);
  if (!(s_top[K - 1].item<double>() > 1e-20 * s_top[0].item<double>()))
    throw InvalidArgument(fmt::format("subset=pca:{}: the collected iterates span fewer than {} directions; lower K",
                                      K, K));
  auto directions = top.t().mm(d) / s_top.sqrt().unsqueeze(1);
  auto q = std::get<0>(at::linalg_qr(directions.t()));  // re-orthonormalized against round-off
  return q.t().contiguous().to(deviations.scalar_type());
}

torch::Tensor random_directions(int64_t P, int64_t K, uint64_t seed, const torch::TensorOptions& options) {
  if (K > P) throw InvalidArgument(fmt::format("subset=random:{} exceeds the model's {} parameters", K, P));
  auto g = at::randn({P, K}, cpu_generator(rng_key(seed, Stream::Init, 7)), at::TensorOptions().dtype(at::kDouble));
  auto q = std::get<0>(at::linalg_qr(g));  // [P, K], orthonormal columns
  return q.t().contiguous().to(options);
}

std::pair<std::string, int64_t> parse_subspace_spec(const std::string& spec) {
  for (const char* kind : {"pca", "random"}) {
    const std::string prefix = std::string(kind) + ":";
    if (spec.rfind(prefix, 0) != 0) continue;
    long k = parse_int(spec.substr(prefix.size()), fmt::format("subset '{}'", spec));
    if (k < 1) throw InvalidArgument(fmt::format("subset '{}': K must be >= 1", spec));
    return {kind, k};
  }
  return {"", 0};
}

}  // namespace credence
