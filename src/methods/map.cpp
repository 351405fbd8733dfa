#include "credence/methods/map.h"

#include "trainer.h"

namespace credence {
namespace {

class MapMethod : public PointTrainer {
 public:
  explicit MapMethod(const Options& options) : options_(options) {}
  bool data_parallel() const override { return true; }
  void init(const Problem& problem) override {
    setup(problem, problem.model->init_params(problem.train_options.seed), options_.get_string("optimizer"));
  }

 private:
  Options options_;
};

}  // namespace

MethodInfo map_method_info() {
  MethodInfo info;
  info.name = "map";
  info.stops_early = true;
  info.summary = "Maximum a posteriori training (a point estimate; weight decay = prior precision / N)";
  info.fields = {{"optimizer", FieldType::Choice, "adam", "optimizer: adam or sgd (momentum 0.9)", {"adam", "sgd"}}};
  info.make = [](const Options& o) { return std::make_unique<MapMethod>(o); };
  return info;
}

}  // namespace credence
