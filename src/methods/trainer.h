#pragma once
// Gradient training of point parameters, one vector [P] (MAP) or M stacked members [M, P]
// (ensembles) trained independently in one batched computation.
#include <torch/optim/optimizer.h>

#include <memory>
#include <string>

#include "credence/methods/method.h"

namespace credence {

class PointTrainer : public Method {
 public:
  StepInfo step(const Batch& batch) override;
  std::shared_ptr<Posterior> finalize() override;
  Likelihood fitted_likelihood() const override;

 protected:
  /// Takes `theta` ([P] or [M, P]) as the trained state; `optimizer` is adam or sgd (momentum 0.9).
  /// A learned Gaussian noise is one scalar shared by stacked members.
  void setup(const Problem& problem, torch::Tensor theta, const std::string& optimizer);

 private:
  const Problem* problem_ = nullptr;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
};

}  // namespace credence
