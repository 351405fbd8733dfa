#pragma once
/// Maximum a posteriori training: the point-mass posterior every comparison starts from.
#include "credence/methods/method.h"

namespace credence {

MethodInfo map_method_info();

}  // namespace credence
