#include "credence/eval/ood.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <vector>

#include "credence/core/error.h"
#include "credence/eval/uncertainty.h"
#include "inputs.h"

namespace credence {

using namespace eval_detail;

namespace {

/// Distinct thresholds from the highest down: positives and negatives scoring exactly `score`.
struct Group {
  double score;
  int64_t pos = 0, neg = 0;
};

std::vector<Group> tie_groups(const torch::Tensor& scores, const torch::Tensor& is_out, const char* fn) {
  if (!scores.defined() || scores.dim() != 1 || scores.size(0) == 0)
    throw InvalidArgument(fmt::format("{}: scores have shape {}, expected non-empty [N]", fn,
                                      scores.defined() ? shape_of(scores) : "undefined"));
  if (!is_out.defined() || !is_out.sizes().equals(scores.sizes()))
    throw InvalidArgument(fmt::format("{}: is_out has shape {}, expected [{}] like scores", fn,
                                      is_out.defined() ? shape_of(is_out) : "undefined", scores.size(0)));
  if (at::isFloatingType(is_out.scalar_type()))
    throw InvalidArgument(fmt::format("{}: is_out must be bool or 0/1 integers, got {}", fn,
                                      c10::toString(is_out.scalar_type())));
  torch::Tensor s = scores.detach().to(at::kCPU, at::kDouble).contiguous();
  require_finite(s, fn, "scores");
  torch::Tensor lab = is_out.detach().to(at::kCPU, at::kLong);
  if (((lab != 0) & (lab != 1)).any().item<bool>())
    throw InvalidArgument(fmt::format("{}: is_out must hold only 0 and 1", fn));
  int64_t n_pos = lab.sum().item<int64_t>();
  if (n_pos == 0 || n_pos == lab.size(0))
    throw InvalidArgument(fmt::format("{}: needs both in- and out-of-distribution examples, got {} out of {}",
                                      fn, n_pos, lab.size(0)));
  torch::Tensor order = std::get<1>(s.sort(/*stable=*/true, /*dim=*/0, /*descending=*/true));
  s = s.index_select(0, order);
  lab = lab.index_select(0, order).contiguous();
  const double* sv = s.data_ptr<double>();
  const int64_t* lv = lab.data_ptr<int64_t>();
  std::vector<Group> groups;
  for (int64_t i = 0; i < s.size(0); ++i) {
    if (groups.empty() || sv[i] != groups.back().score) groups.push_back({sv[i]});
    (lv[i] ? groups.back().pos : groups.back().neg) += 1;
  }
  return groups;
}

}  // namespace

double auroc(const torch::Tensor& scores, const torch::Tensor& is_out) {
  auto groups = tie_groups(scores, is_out, "auroc");
  // Mann-Whitney from the top: each positive beats the negatives below it, half of its ties.
  int64_t pos = 0, neg = 0;
  for (const auto& g : groups) pos += g.pos, neg += g.neg;
  double wins = 0.0;
  int64_t neg_below = neg;
  for (const auto& g : groups) {
    neg_below -= g.neg;
    wins += static_cast<double>(g.pos) * (static_cast<double>(neg_below) + 0.5 * g.neg);
  }
  return wins / (static_cast<double>(pos) * static_cast<double>(neg));
}

double aupr(const torch::Tensor& scores, const torch::Tensor& is_out) {
  auto groups = tie_groups(scores, is_out, "aupr");
  int64_t total_pos = 0;
  for (const auto& g : groups) total_pos += g.pos;
  double ap = 0.0;
  int64_t tp = 0, fp = 0;
  for (const auto& g : groups) {
    tp += g.pos;
    fp += g.neg;
    ap += static_cast<double>(g.pos) / total_pos * static_cast<double>(tp) / (tp + fp);
  }
  return ap;
}

double fpr_at_tpr(const torch::Tensor& scores, const torch::Tensor& is_out, double tpr) {
  if (!(tpr > 0.0 && tpr <= 1.0))
    throw InvalidArgument(fmt::format("fpr_at_tpr: tpr must be in (0, 1], got {}", tpr));
  auto groups = tie_groups(scores, is_out, "fpr_at_tpr");
  int64_t total_pos = 0, total_neg = 0;
  for (const auto& g : groups) total_pos += g.pos, total_neg += g.neg;
  int64_t tp = 0, fp = 0;
  for (const auto& g : groups) {
    tp += g.pos;
    fp += g.neg;
    // A small tolerance so that e.g. 19 of 20 counts as reaching 0.95 despite rounding.
    if (static_cast<double>(tp) >= tpr * static_cast<double>(total_pos) - 1e-9) break;
  }
  return static_cast<double>(fp) / static_cast<double>(total_neg);
}

std::map<std::string, double> ood_metrics(const Predictive& in, const Predictive& out,
                                          const std::string& score) {
  torch::Tensor s_in = uncertainty_score(in, score).cpu(), s_out = uncertainty_score(out, score).cpu();
  torch::Tensor s = at::cat({s_in, s_out});
  torch::Tensor lab = at::cat({at::zeros({s_in.size(0)}, at::kLong), at::ones({s_out.size(0)}, at::kLong)});
  return {{"auroc", auroc(s, lab)}, {"aupr", aupr(s, lab)}, {"fpr95", fpr_at_tpr(s, lab, 0.95)}};
}

}  // namespace credence
