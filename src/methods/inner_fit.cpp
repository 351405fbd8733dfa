#include "inner_fit.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include "credence/core/progress.h"
#include "credence/core/rng.h"

namespace credence {

void train_inner(Method& method, const Problem& problem, int64_t epochs, uint64_t stream, const std::string& label) {
  method.init(problem);
  const auto& o = problem.train_options;
  const auto& train = problem.train;
  const int64_t n = train.size(), bs = std::min<int64_t>(o.batch_size, n);
  Progress progress(label, epochs * ((n + bs - 1) / bs), o.quiet);
  int64_t step = 0;
  for (int64_t epoch = 0; epoch < epochs; ++epoch) {
    auto perm = keyed_permutation(n, rng_key(o.seed, Stream::Shuffle, epoch, stream)).to(train.x.device());
    for (int64_t start = 0; start < n; start += bs) {
      auto idx = perm.narrow(0, start, std::min(bs, n - start));
      auto info = method.step({train.x.index_select(0, idx), train.y.index_select(0, idx), idx, epoch, step});
      progress.update(++step, fmt::format("epoch {}/{} loss {:.4f}", epoch + 1, epochs, info.loss));
    }
  }
}

}  // namespace credence
