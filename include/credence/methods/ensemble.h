#pragma once
/// Deep ensembles: M independently initialized members trained together as one stacked
/// computation (batched matmuls), giving a particle posterior.
#include "credence/methods/method.h"

namespace credence {

MethodInfo ensemble_method_info();

}  // namespace credence
