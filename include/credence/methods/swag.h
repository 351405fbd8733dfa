#pragma once
/// SWAG (SWA-Gaussian, Maddox et al. 2019) and MultiSWAG (Wilson & Izmailov 2020): a Gaussian
/// from the moments of the training iterates, per member of a stacked ensemble.
#include "credence/methods/method.h"

namespace credence {

MethodInfo swag_method_info();
MethodInfo multiswag_method_info();

}  // namespace credence
