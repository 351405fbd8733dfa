#pragma once
/// MC dropout (Gal & Ghahramani 2016): a network trained with dropout on the input of every fully
/// connected layer, predicting by averaging over sampled dropout masks (a DropoutPosterior).
#include "credence/methods/method.h"

namespace credence {

MethodInfo mcdropout_method_info();

}  // namespace credence
