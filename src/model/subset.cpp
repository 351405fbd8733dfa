#include "credence/model/subset.h"

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <fmt/format.h>

#include <vector>

#include "credence/core/error.h"
#include "credence/model/subspace.h"

namespace credence {
namespace {
bool gather_on_cpu(const torch::Tensor& a, const torch::Tensor& g, const torch::Tensor& out) {
  if (!a.defined() || a.dim() != 2 || g.dim() != 3) return false;
  const auto t = g.scalar_type();
  return g.device().is_cpu() && (t == at::kFloat || t == at::kDouble) && a.scalar_type() == t &&
         out.scalar_type() == t && out.stride(2) == 1;
}

// out[n, c, k] = g[n, c, rows[k]] a[n, cols[k]] for the weights, then g[n, c, bias[j]]: one pass
// that reads each row of g and a from cache, where index_select would first copy the gathered
// columns of both into temporaries.
void gather_columns(const torch::Tensor& a, const torch::Tensor& g, const torch::Tensor& rows,
                    const torch::Tensor& cols, const torch::Tensor& bias, torch::Tensor& out) {
  const int64_t n = g.size(0), D = g.size(1), G = g.size(2), in = a.size(1), kw = rows.numel(),
                kb = bias.numel();
  auto r = rows.to(at::kLong).contiguous(), c = cols.to(at::kLong).contiguous(), b = bias.to(at::kLong).contiguous();
  const int64_t *R = r.data_ptr<int64_t>(), *Cc = c.data_ptr<int64_t>(), *B = kb > 0 ? b.data_ptr<int64_t>() : nullptr;
  const int64_t s0 = out.stride(0), s1 = out.stride(1);
  AT_DISPATCH_FLOATING_TYPES(g.scalar_type(), "gather_columns", [&] {
    const scalar_t *A = a.data_ptr<scalar_t>(), *Gp = g.data_ptr<scalar_t>();
    scalar_t* O = out.data_ptr<scalar_t>();
    std::vector<scalar_t> picked(static_cast<size_t>(kw));
    for (int64_t i = 0; i < n; ++i) {
      const scalar_t* ai = A + i * in;
      for (int64_t k = 0; k < kw; ++k) picked[k] = ai[Cc[k]];
      for (int64_t d = 0; d < D; ++d) {
        const scalar_t* gr = Gp + (i * D + d) * G;
        scalar_t* o = O + i * s0 + d * s1;
        for (int64_t k = 0; k < kw; ++k) o[k] = gr[R[k]] * picked[k];
        for (int64_t j = 0; j < kb; ++j) o[kw + j] = gr[B[j]];
      }
    }
  });
}

SubsetLayer layer_from(const Model& model, int weight_block, int bias_block, LayerKind kind = LayerKind::Dense) {
  const auto& blocks = model.layout().blocks;
  const auto& w = blocks[weight_block];
  SubsetLayer l;
  l.kind = kind;
  l.weight_block = weight_block;
  l.bias_block = bias_block;
  l.model_layer = w.layer;
  if (kind != LayerKind::Dense) {  // per-channel (Scale) or per-entry (Shift) parameters
    l.out = w.numel;
    l.in = 1;
    return l;
  }
  if (bias_block >= 0 && blocks[bias_block].numel != w.shape[0])
    throw NotSupported(fmt::format("model '{}': layer '{}' has no bias of size {}", model.spec(), w.name,
                                   w.shape[0]));
  l.out = w.shape[0];
  l.in = w.numel / w.shape[0];  // a convolution's [out, in, k, k] acts on unfolded patches
  return l;
}

// The layers of a model that traces them, with their blocks (weight first), in layer order.
std::vector<SubsetLayer> traced_layers(const Model& model) {
  const auto& layout = model.layout();
  std::vector<std::vector<int>> of_layer(layout.num_layers);
  for (size_t b = 0; b < layout.blocks.size(); ++b) of_layer.at(layout.blocks[b].layer).push_back(static_cast<int>(b));
  std::vector<SubsetLayer> layers;
  for (int i = 0; i < layout.num_layers; ++i) {
    const auto& blocks = of_layer[i];
    if (blocks.empty()) continue;  // frozen
    const LayerKind kind = layout.kinds[i];
    if (blocks.size() > 2 || (kind == LayerKind::Shift && blocks.size() != 1) ||
        (kind == LayerKind::Scale && blocks.size() != 2))
      throw NotSupported(fmt::format("model '{}': layer {} has {} of its parameter tensors trainable; freeze all "
                                     "of a layer's tensors or none",
                                     model.spec(), i, blocks.size()));
    layers.push_back(layer_from(model, blocks[0], blocks.size() > 1 ? blocks[1] : -1, kind));
  }
  return layers;
}
}  // namespace

ParamSubset ParamSubset::parse(const std::string& spec, const Model& model) {
  ParamSubset s;
  s.spec = spec;
  const auto& blocks = model.layout().blocks;
  if (spec == "all" && model.find<Subspace>()) {  // coordinates, not layers: every one of them
    s.size = model.layout().size;
    s.index = at::arange(s.size, at::TensorOptions().dtype(at::kLong).device(model.device()));
    return s;
  }
  if (spec == "last_layer") {
    auto ll = model.require<LastLayerAccess>("subset=last_layer").last_layer();
    s.last_layer = true;
    s.layers.push_back(layer_from(model, ll.weight_block, ll.bias_block));
  } else if ((spec == "all" || spec.rfind("names:", 0) == 0) && !model.layout().kinds.empty()) {
    std::string pattern = spec == "all" ? "" : spec.substr(6);
    for (const auto& l : traced_layers(model)) {
      bool named = blocks[l.weight_block].name.find(pattern) != std::string::npos ||
                   (l.bias_block >= 0 && blocks[l.bias_block].name.find(pattern) != std::string::npos);
      if (named) s.layers.push_back(l);
    }
    if (s.layers.empty())
      throw InvalidArgument(fmt::format("subset '{}' matches no layer of model '{}'", spec, model.spec()));
  } else if (spec == "all" || spec.rfind("names:", 0) == 0) {  // untraced: weight and bias pairs
    std::string pattern = spec == "all" ? "" : spec.substr(6);
    for (size_t b = 0; b + 1 < blocks.size(); ++b) {
      if (blocks[b].name.find("weight") == std::string::npos) continue;
      if (!pattern.empty() && blocks[b].name.find(pattern) == std::string::npos &&
          blocks[b + 1].name.find(pattern) == std::string::npos)
        continue;
      s.layers.push_back(layer_from(model, static_cast<int>(b), static_cast<int>(b + 1)));
    }
    if (s.layers.empty())
      throw InvalidArgument(fmt::format("subset '{}' matches no layer of model '{}'", spec, model.spec()));
    if (model.layout().blocks.size() != 2 * s.layers.size() && spec == "all")
      throw NotSupported(fmt::format("model '{}' has parameters outside linear layers; use subset=last_layer",
                                     model.spec()));
  } else {
    throw InvalidArgument(fmt::format("unknown subset '{}' (known: all, last_layer, names:PATTERN)", spec));
  }
  std::vector<torch::Tensor> idx;
  for (auto& l : s.layers) {
    l.offset = s.size;
    for (int b : {l.weight_block, l.bias_block}) {
      if (b < 0) continue;
      idx.push_back(at::arange(blocks[b].offset, blocks[b].offset + blocks[b].numel, at::kLong));
      s.size += blocks[b].numel;
    }
  }
  s.index = at::cat(idx).to(model.device());
  return s;
}

namespace {
// The columns of every entry of a layer with positions: a [n, T, in] (Dense, Scale), g [n, D, T, out].
torch::Tensor all_shared_columns(const SubsetLayer& l, const torch::Tensor& a, const torch::Tensor& g) {
  const int64_t n = g.size(0), D = g.size(1);
  switch (l.kind) {
    case LayerKind::Dense: {
      auto w = at::einsum("ndto,nti->ndoi", {g, a}).reshape({n, D, l.out * l.in});
      return l.bias_block < 0 ? w : at::cat({w, g.sum(2)}, 2);
    }
    case LayerKind::Scale: return at::cat({(g * a.unsqueeze(1)).sum(2), g.sum(2)}, 2);
    case LayerKind::Shift: break;
  }
  return g.reshape({n, D, l.out});
}
}  // namespace

torch::Tensor SubsetLayer::with_bias_input(const torch::Tensor& a) const {
  return bias_block >= 0 ? at::cat({a, at::ones({a.size(0), 1}, a.options())}, 1) : a;
}

torch::Tensor SubsetLayer::entry_index(torch::Device device) const {
  const int64_t in1 = in + (bias_block >= 0 ? 1 : 0);
  auto opts = at::TensorOptions().dtype(at::kLong).device(device);
  auto idx = at::arange(out, opts).unsqueeze(1) * in + at::arange(in1, opts).unsqueeze(0);
  if (in1 > in) idx.select(1, in).copy_(out * in + at::arange(out, opts));
  return idx + offset;
}

torch::Tensor SubsetLayer::jacobian_columns(const torch::Tensor& a, const torch::Tensor& g) const {
  const int64_t n = g.size(0), D = g.size(1);
  if (shared(g)) {
    auto all = all_shared_columns(*this, a, g);
    if (!partial()) return all;
    return all.index_select(2, at::cat({weight_entries, bias_entries + out * in}));
  }
  if (!partial()) {
    auto w = (g.unsqueeze(3) * a.view({n, 1, 1, in})).reshape({n, D, out * in});
    return bias_block < 0 ? w : at::cat({w, g}, 2);
  }
  auto J = at::empty({n, D, size()}, g.options());
  jacobian_columns_into(a, g, J);
  return J;
}

void SubsetLayer::jacobian_columns_into(const torch::Tensor& a, const torch::Tensor& g, torch::Tensor out) const {
  if (shared(g) || !partial()) {
    out.copy_(jacobian_columns(a, g));
    return;
  }
  const int64_t kw = weight_entries.numel();
  auto rows = at::div(weight_entries, in, "floor"), cols = weight_entries.remainder(in);
  if (gather_on_cpu(a, g, out)) {
    gather_columns(a.contiguous(), g.contiguous(), rows, cols, bias_entries, out);
    return;
  }
  auto weights = out.narrow(2, 0, kw);
  at::mul_out(weights, g.index_select(2, rows), a.index_select(1, cols).unsqueeze(1));
  if (bias_entries.numel() > 0) out.narrow(2, kw, bias_entries.numel()).copy_(g.index_select(2, bias_entries));
}

torch::Tensor SubsetLayer::jacobian_times(const torch::Tensor& a, const torch::Tensor& g, const torch::Tensor& V) const {
  if (partial() || kind != LayerKind::Dense) return jacobian_columns(a, g).matmul(V);
  const int64_t n = a.size(0), m = V.size(1);
  auto VW = V.narrow(0, 0, out * in).view({out, in, m});
  auto add_bias = [&](torch::Tensor t) { return bias_block < 0 ? t : t + V.narrow(0, out * in, out); };
  if (shared(g)) {  // t[n, t, o, k] = sum_i a[n, t, i] V_W[o, i, k] + V_b[o, k]; J V = sum_{t, o} g t
    const int64_t T = a.size(1), D = g.size(1);
    auto t = add_bias(a.reshape({n * T, in}).mm(VW.permute({1, 0, 2}).reshape({in, out * m})).view({n, T, out, m}));
    return g.reshape({n, D, T * out}).bmm(t.reshape({n, T * out, m}));
  }
  // t[n, o, k] = sum_i a[n, i] V_W[o, i, k] + V_b[o, k]; then J V = g t.
  auto t = add_bias(a.mm(VW.permute({1, 0, 2}).reshape({in, out * m})).view({n, out, m}));
  return g.bmm(t);
}

torch::Tensor SubsetLayer::jacobian_transpose_times(const torch::Tensor& a, const torch::Tensor& g,
                                                    const torch::Tensor& U) const {
  const int64_t n = a.size(0), m = U.size(2);
  if (partial() || kind != LayerKind::Dense) return at::einsum("ndk,ndc->kc", {jacobian_columns(a, g), U});
  if (shared(g)) {  // q[n, t, o, m] = sum_d g[n, d, t, o] U[n, d, m]
    const int64_t T = a.size(1);
    auto q = at::einsum("ndto,ndm->ntom", {g, U});
    auto w = a.reshape({n * T, in}).t().mm(q.reshape({n * T, out * m})).view({in, out, m}).permute({1, 0, 2});
    if (bias_block < 0) return w.reshape({out * in, m});
    return at::cat({w.reshape({out * in, m}), q.sum(at::IntArrayRef{0, 1})}, 0);
  }
  auto q = g.transpose(1, 2).bmm(U);  // [n, out, m]
  auto w = a.t().mm(q.reshape({n, out * m})).view({in, out, m}).permute({1, 0, 2}).reshape({out * in, m});
  return bias_block < 0 ? w : at::cat({w, q.sum(0)}, 0);
}

bool ParamSubset::partial() const {
  for (const auto& l : layers)
    if (l.partial()) return true;
  return false;
}

ParamSubset ParamSubset::from_index(const std::string& spec, const Model& model, const torch::Tensor& index) {
  auto all = parse("all", model);
  const auto& blocks = model.layout().blocks;
  auto sorted = std::get<0>(index.to(at::kCPU, at::kLong).sort());
  if (sorted.numel() == 0) throw InvalidArgument(fmt::format("subset '{}' is empty", spec));
  ParamSubset s;
  s.spec = spec;
  for (auto l : all.layers) {
    const auto& wb = blocks[l.weight_block];
    auto in_range = [&](const ParamBlock& b) {
      auto mask = (sorted >= b.offset) & (sorted < b.offset + b.numel);
      return sorted.masked_select(mask) - b.offset;
    };
    l.weight_entries = in_range(wb).to(model.device());
    l.bias_entries = l.bias_block < 0 ? at::empty({0}, at::kLong).to(model.device())
                                      : in_range(blocks[l.bias_block]).to(model.device());
    if (l.size() == 0) continue;
    if (l.num_weights() == l.out * l.in && l.num_biases() == (l.bias_block < 0 ? 0 : l.out)) l.weight_entries = l.bias_entries = torch::Tensor();
    l.offset = s.size;
    s.size += l.size();
    s.layers.push_back(l);
  }
  if (s.size != sorted.numel() || std::get<0>(at::unique_consecutive(sorted)).numel() != sorted.numel())
    throw InvalidArgument(fmt::format("subset '{}': indices must be distinct positions in linear layers", spec));
  s.index = sorted.to(model.device());
  return s;
}

ParamSubset ParamSubset::restore(const std::string& spec, const Model& model, const torch::Tensor& index) {
  return spec.rfind("subnetwork", 0) == 0 ? from_index(spec, model, index) : parse(spec, model);
}

torch::Tensor ParamSubset::per_entry(const torch::Tensor& values) const {
  if (values.numel() == 1) return values.reshape({}).expand({size});
  if (values.numel() != static_cast<int64_t>(layers.size()))
    throw InvalidArgument(fmt::format("subset '{}': {} values given; give one, or one per layer ({})", spec,
                                      values.numel(), layers.size()));
  std::vector<torch::Tensor> parts;
  for (size_t i = 0; i < layers.size(); ++i) parts.push_back(values[i].expand({layers[i].size()}));
  return at::cat(parts);
}

torch::Tensor ParamSubset::gather(const torch::Tensor& theta) const { return theta.index_select(-1, index); }

torch::Tensor ParamSubset::scatter(const torch::Tensor& base, const torch::Tensor& values) const {
  auto out = values.dim() == 2 ? base.unsqueeze(0).repeat({values.size(0), 1}) : base.clone();
  out.index_copy_(-1, index, values.to(out.scalar_type()));
  return out;
}

}  // namespace credence
