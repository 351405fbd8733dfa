#include "credence/methods/particles.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <cmath>

#include "credence/core/error.h"
#include "credence/core/rng.h"
#include "trainer.h"

namespace credence {

std::pair<torch::Tensor, double> rbf_kernel(const torch::Tensor& points, double bandwidth) {
  const int64_t m = points.size(0);
  auto sq = points.pow(2).sum(1);
  auto d2 = (sq.unsqueeze(1) + sq.unsqueeze(0) - 2 * points.mm(points.t())).clamp_min(0);
  d2.fill_diagonal_(0);
  double h = bandwidth;
  if (h <= 0) {
    auto pairs = m > 1 ? d2.masked_select(at::ones({m, m}, at::kBool).triu(1).to(d2.device()))
                       : at::zeros({1}, d2.options());
    double median = pairs.median().item<double>();
    h = median > 0 ? median / std::log(static_cast<double>(m) + 1.0) : 1.0;
  }
  return {at::exp(-d2 / h), h};
}

torch::Tensor stein_direction(const torch::Tensor& points, const torch::Tensor& grad_log_p, double bandwidth) {
  auto [k, h] = rbf_kernel(points, bandwidth);
  // sum_j grad_{x_j} k(x_j, x_i) = (2 / h) (x_i sum_j k_ij - sum_j k_ij x_j)
  auto drift = (2.0 / h) * (points * k.sum(1, true) - k.mm(points));
  return (k.mm(grad_log_p) + drift) / static_cast<double>(points.size(0));
}

torch::Tensor kde_repulsion(const torch::Tensor& points, double bandwidth) {
  auto [k, h] = rbf_kernel(points, bandwidth);
  return (2.0 / h) * (points - k.mm(points) / k.sum(1, true));
}

namespace {

enum class Rule { Stein, Repulsive };

// Members trained as one stacked computation (like the ensemble) whose per-member gradients are
// coupled by a kernel. Gradients here are per example: the log posterior's gradient divided by N,
// so learning rates mean what they mean for MAP.
class ParticleMethod : public PointTrainer {
 public:
  ParticleMethod(const Options& o, Rule rule) : options_(o), rule_(rule) {}
  // Each process steps its block of particles; the kernel terms gather all of them every step.
  bool splits_units(int world_size) const override { return options_.get_int("members") >= world_size; }

  void init(const Problem& problem) override {
    problem_ = &problem;
    const long members = options_.get_int("members");
    function_space_ = rule_ == Rule::Repulsive && options_.get_string("space") == "function";
    bandwidth_ = options_.get_double("bandwidth");
    setup_members(problem, members, options_.get_string("optimizer"), problem.comm != nullptr);
    per_member_ = members_shuffle_apart(options_.get_string("shuffle"), *problem.model, members);
  }

  StepInfo step(const Batch& batch) override {
    if (!per_member_) return PointTrainer::step(batch);
    shared_x_ = batch.x;  // where function-space kernels compare the members
    return PointTrainer::step(member_batches_.make(*problem_, batch, local_members(), first_member()));
  }

 protected:
  // Function space: descend -J_i^T a_i / N, where a_i is the ascent direction of the kernel
  // density repulsion on member i's outputs (on the batch plus optional random context points).
  torch::Tensor extra_objective(const torch::Tensor& outputs, const Batch& batch) override {
    if (!function_space_ || outputs.dim() != 3 || members() < 2) return {};
    // Members on their own batches are compared on the driver's batch, one more forward pass.
    auto f = per_member_ ? problem_->model->forward(shared_x_, state_["theta"]) : outputs;
    const long context = options_.get_int("context");
    if (context > 0) {
      auto shape = problem_->model->input_shape();
      shape.insert(shape.begin(), context);
      auto xc = keyed_randn(shape, rng_key(problem_->train_options.seed, Stream::Noise, batch.step, 1),
                            batch.x.options());
      f = at::cat({f, problem_->model->forward(xc, state_["theta"])}, 1);
    }
    // Logits are defined up to a shift per example; compare the normalized log-probabilities.
    if (problem_->likelihood.kind == LikelihoodKind::Categorical) f = at::log_softmax(f, -1);
    // Members repel in their mean functions only: pushing noise heads apart drives some of them to
    // collapse onto clusters of equal targets (seen on wine's integer-valued quality).
    if (problem_->likelihood.kind == LikelihoodKind::Heteroscedastic) f = f.select(-1, 0);
    f = f.reshape({f.size(0), -1});
    torch::Tensor ascent;
    {
      at::NoGradGuard no_grad;
      ascent = kde_repulsion(gather_members(f.detach()), bandwidth_).narrow(0, first_member(), local_members());
    }
    return -(f * ascent).sum() / static_cast<double>(problem_->train.size());
  }

  void adjust_gradient(torch::Tensor& grad) override {
    if (grad.dim() != 2 || members() < 2 || function_space_) return;
    at::NoGradGuard no_grad;
    auto theta = gather_members(state_["theta"].detach());
    const double n = static_cast<double>(problem_->train.size());
    auto mine = [&](const torch::Tensor& all) { return all.narrow(0, first_member(), local_members()); };
    if (rule_ == Rule::Stein)  // grad is -grad log p / N
      grad.copy_(mine(stein_direction(theta, gather_members(grad) * -n, bandwidth_)) / -n);
    else
      grad.sub_(mine(kde_repulsion(theta, bandwidth_)) / n);
  }

 private:
  Options options_;
  Rule rule_;
  const Problem* problem_ = nullptr;
  bool function_space_ = false;
  double bandwidth_ = 0.0;
  bool per_member_ = false;
  MemberBatches member_batches_;
  torch::Tensor shared_x_;
};

std::vector<Field> common_fields(const std::string& members) {
  return {{"members", FieldType::Int, members, "number of particles (members)", {}},
          {"optimizer", FieldType::Choice, "adam", "optimizer: adam or sgd (momentum 0.9)", {"adam", "sgd"}},
          {"bandwidth", FieldType::Double, "0", "RBF kernel bandwidth h in exp(-d^2/h); 0: median heuristic", {}},
          shuffle_field()};
}

void validate_common(const std::string& name, const Options& o) {
  if (o.get_int("members") < 1)
    throw InvalidArgument(fmt::format("{}: members must be >= 1, got {}", name, o.get_int("members")));
  if (o.get_double("bandwidth") < 0)
    throw InvalidArgument(fmt::format("{}: bandwidth must be >= 0 (0 = median heuristic), got {}", name,
                                      o.get_double("bandwidth")));
}

}  // namespace

MethodInfo svgd_method_info() {
  MethodInfo info;
  info.name = "svgd";
  info.stops_early = true;
  info.summary = "Stein variational gradient descent: particles in weight space with an RBF kernel";
  info.fields = common_fields("10");
  info.make = [](const Options& o) { return std::make_unique<ParticleMethod>(o, Rule::Stein); };
  info.validate = [](const Options& o) { validate_common("svgd", o); };
  return info;
}

MethodInfo repulsive_method_info() {
  MethodInfo info;
  info.name = "repulsive";
  info.stops_early = true;
  info.summary = "Repulsive deep ensemble: members repel by a kernel on weights or on outputs";
  info.fields = common_fields("5");
  info.fields.push_back({"space", FieldType::Choice, "function",
                         "where the kernel measures members: weight or function (outputs)", {"weight", "function"}});
  info.fields.push_back({"context", FieldType::Int, "0",
                         "function space: random inputs added to each batch where outputs are compared", {}});
  info.make = [](const Options& o) { return std::make_unique<ParticleMethod>(o, Rule::Repulsive); };
  info.validate = [](const Options& o) {
    validate_common("repulsive", o);
    if (o.get_int("context") < 0)
      throw InvalidArgument(fmt::format("repulsive: context must be >= 0, got {}", o.get_int("context")));
    if (o.get_int("context") > 0 && o.get_string("space") != "function")
      throw InvalidArgument("repulsive: context points apply to space=function only");
  };
  return info;
}

}  // namespace credence
