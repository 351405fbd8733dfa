#include "trainer.h"

#include <ATen/ATen.h>
#include <torch/optim/adam.h>
#include <torch/optim/sgd.h>

#include <fmt/format.h>

#include <cmath>

#include "credence/core/distributed.h"
#include "credence/core/error.h"
#include "credence/core/rng.h"
#include "credence/model/frozen.h"

namespace credence {

Field shuffle_field() {
  return {"shuffle", FieldType::Choice, "auto",
          "data order: member (each its own shuffle), shared (one order for all), or auto (shared when the "
          "network's first layer, adapter included, is frozen, so that the frozen layers before the first trainable "
          "one run once for all members; member otherwise)",
          {"auto", "member", "shared"}};
}

bool members_shuffle_apart(const std::string& shuffle, const Model& model, int64_t members) {
  if (members < 2 || shuffle == "shared") return false;
  if (shuffle == "member") return true;
  // The first layer is frozen when the first trainable tensor is neither its own nor its adapter's.
  const auto* frozen = model.find<FrozenParameters>();
  if (!frozen) return true;
  const std::string& first = frozen->unfrozen_model().layout().blocks.front().name;
  const std::string layer = first.substr(0, first.rfind('.') + 1);  // "stem." of "stem.weight"
  return model.layout().blocks.front().name.rfind(layer, 0) == 0;
}

Batch MemberBatches::make(const Problem& problem, const Batch& batch, int64_t members, int64_t first) {
  const auto& train = problem.train;
  const int64_t n = train.size(), b = batch.x.size(0);
  const int64_t bs = std::min(problem.train_options.batch_size, n);
  const int64_t steps_per_epoch = (n + bs - 1) / bs;
  if (batch.epoch != epoch_) {
    std::vector<torch::Tensor> perms;
    for (int64_t m = 0; m < members; ++m)
      perms.push_back(
          keyed_permutation(n, rng_key(problem.train_options.seed, Stream::Shuffle, batch.epoch, first + m)));
    perms_ = at::stack(perms).to(train.x.device());
    epoch_ = batch.epoch;
  }
  const int64_t start = (batch.step - batch.epoch * steps_per_epoch) * bs + batch.offset;
  auto idx = perms_.narrow(1, start, b).reshape({-1});
  auto shape = train.x.sizes().vec();
  shape[0] = members * b;
  if (!x_buf_.defined() || x_buf_.size(0) < members * b) {
    x_buf_ = at::empty(shape, train.x.options());
    y_buf_ = at::empty({members * b}, train.y.options());
  }
  auto bx = x_buf_.narrow(0, 0, members * b), by = y_buf_.narrow(0, 0, members * b);
  at::index_select_out(bx, train.x, 0, idx);
  at::index_select_out(by, train.y, 0, idx);
  shape[0] = b;
  shape.insert(shape.begin(), members);
  return {bx.view(shape), by.view({members, b}), batch.index, batch.epoch, batch.step, batch.offset, batch.global_rows};
}

void PointTrainer::setup(const Problem& problem, torch::Tensor theta, const std::string& optimizer) {
  problem_ = &problem;
  theta.requires_grad_(true);
  state_["theta"] = theta;
  std::vector<torch::Tensor> params = {theta};
  if (problem.likelihood.kind == LikelihoodKind::Gaussian && problem.likelihood.learn_sigma) {
    state_["log_sigma"] = at::full({}, std::log(problem.likelihood.sigma), theta.options()).requires_grad_(true);
    params.push_back(state_["log_sigma"]);
  }
  // Both optimizers are elementwise, so stacked members train independently.
  const double lr = problem.train_options.lr;
  if (optimizer == "sgd")
    optimizer_ = std::make_unique<torch::optim::SGD>(params, torch::optim::SGDOptions(lr).momentum(0.9));
  else
    optimizer_ = std::make_unique<torch::optim::Adam>(params, torch::optim::AdamOptions(lr));
}

void PointTrainer::setup_members(const Problem& problem, int64_t members, const std::string& optimizer,
                                 bool spread) {
  spread_ = spread && problem.comm;
  members_ = members;
  auto [first, last] = spread_ ? owned_units(problem, members) : std::pair<int64_t, int64_t>{0, members};
  if (first == last)
    throw InvalidArgument(fmt::format("{} members cannot be spread over {} processes: use at least as many members "
                                      "as processes", members, problem.comm->world_size()));
  first_member_ = first;
  // Every process draws all the starts, so that member m starts alike however they are spread.
  setup(problem, member_init_params(*problem.model, problem.train_options.seed, members).slice(0, first, last).contiguous(),
        optimizer);
}

torch::Tensor PointTrainer::gather_members(const torch::Tensor& local) const {
  return spread_ ? gather_units(*problem_, local, first_member_, members_) : local;
}

void PointTrainer::set_lr(double lr) {
  for (auto& group : optimizer_->param_groups()) group.options().set_lr(lr);
}

StepInfo PointTrainer::step(const Batch& batch) {
  const auto& p = *problem_;
  auto& theta = state_["theta"];
  optimizer_->zero_grad();
  auto out = outputs(batch, theta);
  auto ls = state_.count("log_sigma") ? state_["log_sigma"] : torch::Tensor();
  // Per-example objective: NLL averaged over the batch plus the prior spread over N examples,
  // i.e. weight decay prior_precision / N. The prior's gradient is added directly rather than
  // through autograd, whose graph for it cost ~16% of an mlp:256,256 step (bench/map_throughput).
  auto nll = (theta.dim() == 1 ? p.likelihood.nll(out, batch.y, ls) : p.likelihood.nll_stacked(out, batch.y, ls).sum()) /
             batch.y.size(-1);
  auto extra = extra_objective(out, batch);
  (extra.defined() ? nll + extra : nll).backward();
  if (!theta.grad().defined()) theta.mutable_grad() = at::zeros_like(theta);
  const bool overlapped = reduction_.active(p, batch);
  if (overlapped) {  // the prior's gradient is alike on every rank: added after the sum
    reduction_.finish(p, batch, theta.mutable_grad());
    if (state_.count("log_sigma")) reduce_gradients(p, batch, {state_["log_sigma"].mutable_grad()});
  }
  double prior = p.prior.add_grad(theta, theta.mutable_grad(), 1.0 / static_cast<double>(p.train.size()));
  if (!overlapped) reduce_gradients(p, batch, state_);
  if (spread_ && state_.count("log_sigma")) p.comm->all_reduce_sum({state_["log_sigma"].mutable_grad()});
  adjust_gradient(theta.mutable_grad());
  optimizer_->step();
  const double members = theta.dim() == 1 ? 1.0 : static_cast<double>(theta.size(0));
  return {(nll.item<double>() + prior) / members};
}

std::shared_ptr<Posterior> PointTrainer::finalize() {
  return std::make_shared<ParticlePosterior>(gather_members(state_["theta"].detach().clone()));
}

Likelihood PointTrainer::fitted_likelihood() const {
  Likelihood l = problem_->likelihood;
  auto it = state_.find("log_sigma");
  if (it != state_.end()) l.sigma = std::exp(it->second.item<double>());
  return l;
}

}  // namespace credence
