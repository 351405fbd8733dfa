#pragma once
// --tune: hyper-parameters chosen on the validation part before the fit that is returned.
#include "credence/fit/fit.h"

namespace credence {

/// The weight decay (prior precision per training example) that --prior auto means.
constexpr double kDefaultWeightDecay = 5e-4;

/// Coordinate search over the method's step size, weight decay and own tune_space (each axis in
/// turn, the others at the best values so far), each candidate fitted on the fit part and scored
/// by its validation NLL; methods that can stop early do so (patience 5 unless given). A post-hoc
/// method starts from a MAP tuned the same way. Returns the best candidate's fit with
/// info["tuned"] (the chosen values) and info["tuning"] (every trial). Options the user gave
/// (--lr, --prior, a method option) are kept, not searched.
FittedModel fit_tuned(const FitRequest& request);

}  // namespace credence
