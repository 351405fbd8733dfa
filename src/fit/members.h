#pragma once
// METHOD:members=M for a method without members of its own: M independent fits from different
// seeds, kept as one equal mixture (MembersPosterior).
#include <string>
#include <utility>

#include "credence/fit/fit.h"

namespace credence {

/// The method spec without its members= option, and M (0 when the spec has none, or when the
/// method's own option of that name takes it, as the ensemble's does).
std::pair<std::string, int64_t> split_members(const std::string& method);

/// M fits of `method` (the spec without members=), member m from its own seed (member 0 from the
/// request's, and from the request's MAP when one is given), as one posterior.
FittedModel fit_members(const FitRequest& request, const std::string& method, int64_t members);

}  // namespace credence
