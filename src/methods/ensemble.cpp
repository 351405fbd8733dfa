#include "credence/methods/ensemble.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include "credence/core/distributed.h"
#include "credence/core/error.h"
#include "trainer.h"

namespace credence {
namespace {

class EnsembleMethod : public PointTrainer {
 public:
  explicit EnsembleMethod(const Options& o) : options_(o) {}
  bool data_parallel() const override { return true; }
  bool splits_units(int world_size) const override {
    const std::string parallel = options_.get_string("parallel");
    return parallel == "members" || (parallel == "auto" && options_.get_int("members") >= world_size);
  }

  void init(const Problem& problem) override {
    const long members = options_.get_int("members");
    if (members < 1) throw InvalidArgument(fmt::format("ensemble: members must be >= 1, got {}", members));
    problem_ = &problem;
    // Member 0 starts where MAP starts, so a one-member ensemble is MAP.
    setup_members(problem, members, options_.get_string("optimizer"),
                  problem.comm && splits_units(problem.comm->world_size()));
    per_member_ = members_shuffle_apart(options_.get_string("shuffle"), *problem.model, members);
  }

  // Own data orders make members disagree more than different initializations alone.
  StepInfo step(const Batch& batch) override {
    return PointTrainer::step(per_member_ ? member_batches_.make(*problem_, batch, local_members(), first_member()) : batch);
  }

 private:
  Options options_;
  const Problem* problem_ = nullptr;
  bool per_member_ = false;
  MemberBatches member_batches_;
};

}  // namespace

MethodInfo ensemble_method_info() {
  MethodInfo info;
  info.name = "ensemble";
  info.stops_early = true;
  info.summary = "Deep ensemble: M independently initialized members trained as one batched computation";
  info.fields = {{"members", FieldType::Int, "5", "number of members", {}},
                 {"optimizer", FieldType::Choice, "adam", "optimizer: adam or sgd (momentum 0.9)", {"adam", "sgd"}},
                 shuffle_field(),
                 {"parallel", FieldType::Choice, "auto",
                  "several processes: members (each trains its share of the members on all the data), data (all "
                  "members, each on its share of every minibatch), auto (members when there are enough)",
                  {"auto", "members", "data"}}};
  info.make = [](const Options& o) { return std::make_unique<EnsembleMethod>(o); };
  info.validate = [](const Options& o) {
    if (o.get_int("members") < 1)
      throw InvalidArgument(fmt::format("ensemble: members must be >= 1, got {}", o.get_int("members")));
  };
  return info;
}

}  // namespace credence
