#include "credence/methods/mcdropout.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include "credence/core/error.h"
#include "credence/core/rng.h"
#include "credence/posterior/dropout.h"
#include "trainer.h"

namespace credence {
namespace {

void check_rate(double p) {
  if (!(p >= 0.0 && p < 1.0))
    throw InvalidArgument(fmt::format("mcdropout: p (the dropout rate) must be in [0, 1), got {}; e.g. p=0.1", p));
}

class McDropoutMethod : public PointTrainer {
 public:
  explicit McDropoutMethod(const Options& o) : options_(o), p_(o.get_double("p")) {}
  bool data_parallel() const override { return true; }

  void init(const Problem& problem) override {
    check_rate(p_);
    model_ = problem.model;
    dropout_ = &model_->require<DropoutForward>("mcdropout");
    seed_ = problem.train_options.seed;
    // Starts where MAP starts, so p=0 trains exactly as map does.
    setup(problem, model_->init_params(seed_), options_.get_string("optimizer"));
  }

  std::shared_ptr<Posterior> finalize() override {
    std::vector<ParamBlock> blocks;
    for (const auto& name : dropout_->dropout_blocks()) blocks.push_back(model_->layout().find(name));
    return std::make_shared<DropoutPosterior>(state_["theta"].detach().clone(), p_, std::move(blocks));
  }

 protected:
  // Fresh masks per example and step, keyed by the step so a rerun draws the same ones; a shard of
  // a data-parallel minibatch takes its rows' masks of the whole minibatch.
  torch::Tensor outputs(const Batch& batch, const torch::Tensor& theta) override {
    return dropout_->forward_dropout(batch.x, theta, p_, rng_key(seed_, Stream::Noise, batch.step), batch.offset,
                                   batch.global_rows);
  }

 private:
  Options options_;
  double p_;
  std::shared_ptr<Model> model_;
  const DropoutForward* dropout_ = nullptr;  // part of *model_
  uint64_t seed_ = 0;
};

}  // namespace

MethodInfo mcdropout_method_info() {
  MethodInfo info;
  info.name = "mcdropout";
  info.stops_early = true;
  info.tune_space = {{"p", {"0.05", "0.1", "0.2"}}};
  info.summary = "MC dropout: dropout on every fully connected layer's input, predicting over sampled masks";
  info.fields = {{"p", FieldType::Double, "0.1", "dropout rate, in [0, 1)", {}},
                 {"optimizer", FieldType::Choice, "adam", "optimizer: adam or sgd (momentum 0.9)", {"adam", "sgd"}}};
  info.make = [](const Options& o) { return std::make_unique<McDropoutMethod>(o); };
  info.validate = [](const Options& o) { check_rate(o.get_double("p")); };
  return info;
}

}  // namespace credence
