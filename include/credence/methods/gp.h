#pragma once
/// Exact Gaussian-process regression (`gp`): the baseline every surrogate is compared with.
#include "credence/methods/method.h"

namespace credence {

MethodInfo gp_method_info();

}  // namespace credence
