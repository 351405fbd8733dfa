#pragma once
// Runs a method's own training loop inside another method (a data prior for pacbayes, a VI warm
// start for MCMC), with shuffles on a stream of its own so its batches never repeat the outer fit's.
#include <string>

#include "credence/methods/method.h"

namespace credence {

/// init(problem), then `epochs` passes of minibatches (the problem's batch size) through step().
/// `stream` (>= 1) keys the shuffles; `label` names the progress line.
void train_inner(Method& method, const Problem& problem, int64_t epochs, uint64_t stream, const std::string& label);

}  // namespace credence
