#pragma once
/// IVON, the Improved Variational Online Newton optimizer (Shen, Daheim et al., ICML 2024): a
/// diagonal Gaussian posterior learned at about the cost of Adam, from one sampled gradient per
/// step and a reparameterization-trick estimate of the diagonal Hessian.
#include "credence/methods/method.h"

namespace credence {

MethodInfo ivon_method_info();

}  // namespace credence
