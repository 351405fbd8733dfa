#include "credence/methods/swag.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <cmath>

#include "credence/core/error.h"
#include "credence/posterior/swag.h"
#include "trainer.h"

namespace credence {
namespace {

// The first epoch whose iterates are collected; the epsilon keeps 0.3 * 10 at 3, not 4.
int64_t start_epoch(double start, int64_t epochs) {
  return static_cast<int64_t>(std::ceil(start * static_cast<double>(epochs) - 1e-9));
}

class SwagMethod : public PointTrainer {
 public:
  SwagMethod(std::string name, long members, const Options& o)
      : name_(std::move(name)), members_(members), options_(o), moments_(o.get_int("rank")) {}
  bool data_parallel() const override { return true; }

  void init(const Problem& problem) override {
    const auto& train = problem.train_options;
    const int64_t n = problem.train.size();
    steps_per_epoch_ = (n + std::min(train.batch_size, n) - 1) / std::min(train.batch_size, n);
    collect_ = options_.get_int("collect");
    if (collect_ > steps_per_epoch_)
      throw InvalidArgument(fmt::format("{}: collect={} exceeds the {} steps per epoch; lower collect or --batch-size",
                                        name_, collect_, steps_per_epoch_));
    start_epoch_ = start_epoch(options_.get_double("start"), train.epochs);
    epochs_ = train.epochs;
    collect_lr_ = train.lr * options_.get_double("lr_factor");
    setup(problem, member_init_params(*problem.model, train.seed, members_), options_.get_string("optimizer"));
  }

  StepInfo step(const Batch& batch) override {
    const bool collecting = batch.epoch >= start_epoch_;
    if (collecting && !lr_switched_) {
      set_lr(collect_lr_);
      lr_switched_ = true;
    }
    auto info = PointTrainer::step(batch);
    // Collection j of c falls on the last step of the j-th c-th of the epoch (the last step for c = 1).
    const int64_t s = batch.step - batch.epoch * steps_per_epoch_;
    if (collecting && ((s + 1) * collect_) / steps_per_epoch_ > (s * collect_) / steps_per_epoch_)
      moments_.update(state_["theta"].detach());
    return info;
  }

  std::shared_ptr<Posterior> finalize() override {
    if (moments_.count() == 0)
      throw InvalidArgument(fmt::format(
          "{}: no iterate was collected: collection starts at epoch {} of {} (start={}); raise --epochs or lower start",
          name_, start_epoch_ + 1, epochs_, options_.get_double("start")));
    return std::make_shared<SwagPosterior>(moments_.mean(), moments_.variance(), moments_.deviations(),
                                           options_.get_double("scale"));
  }

 private:
  std::string name_;
  long members_;
  Options options_;
  SwagMoments moments_;
  int64_t steps_per_epoch_ = 1, collect_ = 1, start_epoch_ = 0, epochs_ = 0;
  double collect_lr_ = 0;
  bool lr_switched_ = false;
};

std::vector<Field> swag_fields() {
  return {{"start", FieldType::Double, "0.5", "fraction of epochs after which iterates are collected, in [0, 1)", {}},
          {"collect", FieldType::Int, "1", "collections per epoch (the last at the epoch's last step)", {}},
          {"rank", FieldType::Int, "20", "deviation columns kept (0: diagonal only; else >= 2)", {}},
          {"lr_factor", FieldType::Double, "1", "multiplies the learning rate once collection starts", {}},
          {"optimizer", FieldType::Choice, "adam", "optimizer: adam or sgd (momentum 0.9)", {"adam", "sgd"}},
          {"scale", FieldType::Double, "0.5", "covariance scale when sampling", {}}};
}

void validate_swag(const std::string& name, const Options& o) {
  const double start = o.get_double("start");
  if (!(start >= 0 && start < 1))
    throw InvalidArgument(fmt::format("{}: start must be in [0, 1), got {}", name, start));
  if (o.get_int("collect") < 1)
    throw InvalidArgument(fmt::format("{}: collect must be >= 1, got {}", name, o.get_int("collect")));
  const long rank = o.get_int("rank");
  if (rank < 0 || rank == 1)
    throw InvalidArgument(fmt::format(
        "{}: rank must be 0 (diagonal only) or >= 2 (the low-rank term divides by rank - 1), got {}", name, rank));
  if (!(o.get_double("lr_factor") > 0))
    throw InvalidArgument(fmt::format("{}: lr_factor must be > 0, got {}", name, o.get_double("lr_factor")));
  if (!(o.get_double("scale") > 0))
    throw InvalidArgument(fmt::format("{}: scale must be > 0, got {}", name, o.get_double("scale")));
}

}  // namespace

MethodInfo swag_method_info() {
  MethodInfo info;
  info.name = "swag";
  info.summary = "SWA-Gaussian: diagonal plus low-rank Gaussian from the moments of the training iterates";
  info.fields = swag_fields();
  info.tune_space = {{"scale", {"0.25", "0.5", "1"}}};
  info.make = [](const Options& o) { return std::make_unique<SwagMethod>("swag", 1, o); };
  info.validate = [](const Options& o) { validate_swag("swag", o); };
  return info;
}

MethodInfo multiswag_method_info() {
  MethodInfo info;
  info.name = "multiswag";
  info.summary = "MultiSWAG: M independent SWAG runs trained as one stacked computation, an equal mixture";
  info.fields = swag_fields();
  info.tune_space = {{"scale", {"0.25", "0.5", "1"}}};
  info.fields.insert(info.fields.begin(), {"members", FieldType::Int, "5", "number of SWAG members", {}});
  info.make = [](const Options& o) { return std::make_unique<SwagMethod>("multiswag", o.get_int("members"), o); };
  info.validate = [](const Options& o) {
    if (o.get_int("members") < 1)
      throw InvalidArgument(fmt::format("multiswag: members must be >= 1, got {}", o.get_int("members")));
    validate_swag("multiswag", o);
  };
  return info;
}

}  // namespace credence
