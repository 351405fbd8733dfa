#pragma once
/// MC dropout's predictive (Gal & Ghahramani 2016) as a posterior over weights: dropping input j of
/// a linear layer equals zeroing column j of its weight matrix, so each draw is theta with
/// independently column-masked weight blocks, and every predictive runs through the stacked forward.
/// Masks are shared by the inputs of one draw, which leaves each input's predictive unchanged.
#include <vector>

#include "credence/posterior/posterior.h"

namespace credence {

class DropoutPosterior : public Posterior {
 public:
  /// theta [P]; `blocks`: weight blocks [out, in] whose input columns are dropped with rate p.
  DropoutPosterior(torch::Tensor theta, double p, std::vector<ParamBlock> blocks);
  std::string kind() const override { return "dropout"; }
  /// n draws [n, P]: each column of each block kept (scaled by 1/(1-p)) or zeroed; the rest is theta.
  torch::Tensor sample(int64_t n, uint64_t seed) const override;
  void save(TensorMap& tensors, nlohmann::json& meta) const override;
  /// Looks the saved block names up in `model`'s layout; IoError when one is missing.
  static std::unique_ptr<DropoutPosterior> load(const TensorMap& tensors, const nlohmann::json& meta,
                                                const Model& model);

  const torch::Tensor& theta() const { return theta_; }
  double p() const { return p_; }
  const std::vector<ParamBlock>& blocks() const { return blocks_; }

 private:
  torch::Tensor theta_;
  double p_;
  std::vector<ParamBlock> blocks_;
};

}  // namespace credence
