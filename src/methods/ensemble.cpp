#include "credence/methods/ensemble.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include "credence/core/error.h"
#include "credence/core/rng.h"
#include "trainer.h"

namespace credence {
namespace {

class EnsembleMethod : public PointTrainer {
 public:
  explicit EnsembleMethod(const Options& o) : options_(o) {}

  void init(const Problem& problem) override {
    const long members = options_.get_int("members");
    if (members < 1) throw InvalidArgument(fmt::format("ensemble: members must be >= 1, got {}", members));
    // Member 0 starts where MAP starts, so a one-member ensemble is MAP; the others get keyed seeds.
    std::vector<torch::Tensor> inits;
    const uint64_t seed = problem.train_options.seed;
    for (long m = 0; m < members; ++m)
      inits.push_back(problem.model->init_params(m == 0 ? seed : rng_key(seed, Stream::Init, 1, m)));
    setup(problem, at::stack(inits), options_.get_string("optimizer"));
    problem_ = &problem;
    members_ = members;
    per_member_ = options_.get_string("shuffle") == "member" && members > 1;
  }

  // With shuffle=member each member takes the rows at the same positions of its own keyed
  // permutation (member 0's is the driver's, so member 0 still equals MAP): different data orders
  // make members disagree more than different initializations alone.
  StepInfo step(const Batch& batch) override {
    if (!per_member_) return PointTrainer::step(batch);
    const auto& train = problem_->train;
    const int64_t n = train.size(), b = batch.x.size(0);
    const int64_t bs = std::min(problem_->train_options.batch_size, n);
    const int64_t steps_per_epoch = (n + bs - 1) / bs;
    if (batch.epoch != perm_epoch_) {
      std::vector<torch::Tensor> perms;
      for (long m = 0; m < members_; ++m)
        perms.push_back(keyed_permutation(n, rng_key(problem_->train_options.seed, Stream::Shuffle, batch.epoch, m)));
      member_perms_ = at::stack(perms).to(train.x.device());
      perm_epoch_ = batch.epoch;
    }
    const int64_t start = (batch.step - batch.epoch * steps_per_epoch) * bs;
    auto idx = member_perms_.narrow(1, start, b).reshape({-1});
    auto shape = train.x.sizes().vec();
    shape[0] = members_ * b;
    if (!x_buf_.defined() || x_buf_.size(0) < members_ * b) {
      x_buf_ = at::empty(shape, train.x.options());
      y_buf_ = at::empty({members_ * b}, train.y.options());
    }
    auto bx = x_buf_.narrow(0, 0, members_ * b), by = y_buf_.narrow(0, 0, members_ * b);
    at::index_select_out(bx, train.x, 0, idx);
    at::index_select_out(by, train.y, 0, idx);
    shape[0] = b;
    shape.insert(shape.begin(), members_);
    return PointTrainer::step({bx.view(shape), by.view({members_, b}), batch.index, batch.epoch, batch.step});
  }

 private:
  Options options_;
  const Problem* problem_ = nullptr;
  long members_ = 1;
  bool per_member_ = false;
  int64_t perm_epoch_ = -1;
  torch::Tensor member_perms_;  // [M, N]: this epoch's permutation of each member
  torch::Tensor x_buf_, y_buf_;
};

}  // namespace

MethodInfo ensemble_method_info() {
  MethodInfo info;
  info.name = "ensemble";
  info.summary = "Deep ensemble: M independently initialized members trained as one batched computation";
  info.fields = {{"members", FieldType::Int, "5", "number of members", {}},
                 {"optimizer", FieldType::Choice, "adam", "optimizer: adam or sgd (momentum 0.9)", {"adam", "sgd"}},
                 {"shuffle", FieldType::Choice, "member",
                  "data order: member (each its own shuffle) or shared (one order for all)", {"member", "shared"}}};
  info.make = [](const Options& o) { return std::make_unique<EnsembleMethod>(o); };
  info.validate = [](const Options& o) {
    if (o.get_int("members") < 1)
      throw InvalidArgument(fmt::format("ensemble: members must be >= 1, got {}", o.get_int("members")));
  };
  return info;
}

}  // namespace credence
