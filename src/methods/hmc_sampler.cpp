// The sampler itself: leapfrog, the multinomial NUTS tree (Betancourt 2017, as in Stan), plain
// HMC, and Stan's warm-up (dual averaging; windowed diagonal mass adaptation).
#include <ATen/ATen.h>
#include <fmt/format.h>

#include <cmath>
#include <random>

#include "credence/core/error.h"
#include "credence/core/rng.h"
#include "credence/methods/hmc.h"

namespace credence {
namespace {

constexpr double kMaxEnergyError = 1000.0;  // a larger energy error is a divergence

double log_add_exp(double a, double b) {
  if (a == -INFINITY) return b;
  if (b == -INFINITY) return a;
  double m = std::max(a, b);
  return m + std::log(std::exp(a - m) + std::exp(b - m));
}

// Sampler vectors are plain arrays: at the sizes sampled here (up to a few thousand
// coordinates) per-operation tensor overhead would dominate each leapfrog step.
using Vec = std::vector<double>;

struct Point {
  Vec q, r, grad;
  Vec v;  // velocity M^-1 r
  double logp = 0.0;
};

struct Tree {
  Point left, right, proposal;
  Vec rho;                        // sum of momenta over the tree
  double log_weight = -INFINITY;  // log sum exp(H0 - H) over the tree
  bool stop = false, divergent = false;
  double accept_sum = 0.0;
  int64_t leapfrogs = 0;
};

void add_to(Vec& a, const Vec& b) {
  for (size_t i = 0; i < a.size(); ++i) a[i] += b[i];
}

class Sampler {
 public:
  Sampler(const LogDensity& f, const SamplerSettings& s, int64_t dim, uint64_t key)
      : inv_mass(dim, 1.0), f_(f), s_(s), rng_(rng_key(key, Stream::Sample)) {}

  // A dense metric: M^-1 = `cov` [d, d] (row-major) and the transposed inverse of its
  // Cholesky factor, which maps standard normals to momenta r ~ N(0, M).
  void set_dense(const torch::Tensor& cov) {
    auto c = cov.to(at::kDouble).contiguous();
    auto l_inv_t = at::inverse(at::linalg_cholesky(c)).t().contiguous();
    dense_inv_mass.assign(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
    momentum_map.assign(l_inv_t.data_ptr<double>(), l_inv_t.data_ptr<double>() + l_inv_t.numel());
  }
  bool dense() const { return !dense_inv_mass.empty(); }

  void velocity(const Vec& r, Vec& v) const {
    const size_t d = r.size();
    v.resize(d);
    if (!dense()) {
      for (size_t i = 0; i < d; ++i) v[i] = inv_mass[i] * r[i];
      return;
    }
    for (size_t i = 0; i < d; ++i) {
      const double* row = dense_inv_mass.data() + i * d;
      double acc = 0.0;
      for (size_t j = 0; j < d; ++j) acc += row[j] * r[j];
      v[i] = acc;
    }
  }

  void evaluate(Point& p) {
    p.grad.assign(p.q.size(), 0.0);
    const auto d = static_cast<int64_t>(p.q.size());
    auto q = at::from_blob(p.q.data(), {d}, at::kDouble);
    auto g = at::from_blob(p.grad.data(), {d}, at::kDouble);
    p.logp = f_(q, g);
  }

  // Sets p.v and returns the kinetic energy r^T M^-1 r / 2.
  double kinetic(Point& p) const {
    velocity(p.r, p.v);
    double k = 0.0;
    for (size_t i = 0; i < p.r.size(); ++i) k += p.r[i] * p.v[i];
    return 0.5 * k;
  }

  Point leapfrog(const Point& p, double eps) {
    Point n;
    const size_t d = p.q.size();
    n.r.resize(d);
    n.q.resize(d);
    for (size_t i = 0; i < d; ++i) n.r[i] = p.r[i] + 0.5 * eps * p.grad[i];
    velocity(n.r, n.v);
    for (size_t i = 0; i < d; ++i) n.q[i] = p.q[i] + eps * n.v[i];
    evaluate(n);
    for (size_t i = 0; i < d; ++i) n.r[i] += 0.5 * eps * n.grad[i];
    return n;
  }

  Vec draw_momentum(size_t d) {
    std::normal_distribution<double> normal;
    Vec z(d);
    for (size_t i = 0; i < d; ++i) z[i] = normal(rng_);
    if (!dense()) {
      for (size_t i = 0; i < d; ++i) z[i] /= std::sqrt(inv_mass[i]);
      return z;
    }
    Vec r(d, 0.0);
    for (size_t i = 0; i < d; ++i)
      for (size_t j = 0; j < d; ++j) r[i] += momentum_map[i * d + j] * z[j];
    return r;
  }
  double uniform() { return std::uniform_real_distribution<double>(0.0, 1.0)(rng_); }

  // The generalized no-U-turn criterion with the velocity M^-1 r at both ends.
  bool turned(const Vec& rho, const Point& left, const Point& right) const {
    double a = 0.0, b = 0.0;
    for (size_t i = 0; i < rho.size(); ++i) {
      a += left.v[i] * rho[i];
      b += right.v[i] * rho[i];
    }
    return a <= 0 || b <= 0;
  }

  // Whether the trajectory made of adjacent subtrees `back` then `front` has turned: across the
  // whole, and across each junction (Stan's extra checks, which stop the periodic trajectories
  // that the end-to-end criterion alone misses, e.g. on low-dimensional Gaussians).
  bool merged_turned(const Tree& back, const Tree& front, const Vec& rho) const {
    if (turned(rho, back.left, front.right)) return true;
    Vec extended = back.rho;
    add_to(extended, front.left.r);
    if (turned(extended, back.left, front.left)) return true;
    extended = front.rho;
    add_to(extended, back.right.r);
    return turned(extended, back.right, front.right);
  }

  Tree leaf(const Point& from, int dir) {
    Tree t;
    Point n = leapfrog(from, dir * eps);
    double h = -n.logp + kinetic(n);
    t.leapfrogs = 1;
    if (!std::isfinite(h) || h - h0_ > kMaxEnergyError) {
      t.stop = t.divergent = true;
      return t;
    }
    t.log_weight = h0_ - h;
    t.accept_sum = std::min(1.0, std::exp(h0_ - h));
    t.rho = n.r;
    t.left = t.right = t.proposal = n;
    return t;
  }

  // A subtree of 2^depth leapfrog steps in direction `dir`, sampling its proposal multinomially.
  Tree build(const Point& from, int depth, int dir) {
    if (depth == 0) return leaf(from, dir);
    Tree a = build(from, depth - 1, dir);
    if (a.stop) return a;
    Tree b = build(dir > 0 ? a.right : a.left, depth - 1, dir);
    a.accept_sum += b.accept_sum;
    a.leapfrogs += b.leapfrogs;
    if (b.stop) {
      a.stop = true;
      a.divergent = b.divergent;
      return a;
    }
    double lw = log_add_exp(a.log_weight, b.log_weight);
    if (uniform() < std::exp(b.log_weight - lw)) a.proposal = b.proposal;
    Vec rho = a.rho;
    add_to(rho, b.rho);
    const bool stop = dir > 0 ? merged_turned(a, b, rho) : merged_turned(b, a, rho);
    a.log_weight = lw;
    (dir > 0 ? a.right : a.left) = dir > 0 ? b.right : b.left;
    a.rho = std::move(rho);
    a.stop = stop;
    return a;
  }

  struct Transition {
    Point point;
    double accept = 0.0;
    int64_t leapfrogs = 0;
    bool divergent = false;
  };

  Transition nuts(const Point& start) {
    Point p0 = start;
    p0.r = draw_momentum(start.q.size());
    h0_ = -p0.logp + kinetic(p0);
    Tree tree;
    tree.left = tree.right = tree.proposal = p0;
    tree.rho = p0.r;
    tree.log_weight = 0.0;
    Transition t;
    for (int depth = 0; depth < s_.max_depth; ++depth) {
      int dir = uniform() < 0.5 ? -1 : 1;
      Tree sub = build(dir > 0 ? tree.right : tree.left, depth, dir);
      tree.accept_sum += sub.accept_sum;
      tree.leapfrogs += sub.leapfrogs;
      if (sub.stop) {
        t.divergent = sub.divergent;
        break;
      }
      // Biased progressive sampling: favour the new subtree (Betancourt 2017, appendix A.3.2).
      if (uniform() < std::exp(sub.log_weight - tree.log_weight)) tree.proposal = sub.proposal;
      Vec rho = tree.rho;
      add_to(rho, sub.rho);
      const bool stop = dir > 0 ? merged_turned(tree, sub, rho) : merged_turned(sub, tree, rho);
      tree.log_weight = log_add_exp(tree.log_weight, sub.log_weight);
      (dir > 0 ? tree.right : tree.left) = dir > 0 ? sub.right : sub.left;
      tree.rho = std::move(rho);
      if (stop) break;
    }
    t.point = tree.proposal;
    t.leapfrogs = tree.leapfrogs;
    t.accept = tree.leapfrogs > 0 ? tree.accept_sum / static_cast<double>(tree.leapfrogs) : 0.0;
    return t;
  }

  Transition hmc(const Point& start) {
    Point p = start;
    p.r = draw_momentum(start.q.size());
    double h0 = -p.logp + kinetic(p);
    Transition t;
    for (int64_t i = 0; i < s_.steps; ++i) {
      p = leapfrog(p, eps);
      ++t.leapfrogs;
      if (!std::isfinite(p.logp)) break;
    }
    double h = -p.logp + kinetic(p);
    t.divergent = !std::isfinite(h) || h - h0 > kMaxEnergyError;
    t.accept = t.divergent ? 0.0 : std::min(1.0, std::exp(h0 - h));
    t.point = (!t.divergent && uniform() < t.accept) ? p : start;
    return t;
  }

  // Doubles or halves the step until one leapfrog's acceptance crosses 1/2 (Hoffman & Gelman).
  void reasonable_step(const Point& p) {
    eps = 1.0;
    auto accept_log = [&] {
      Point s = p;
      s.r = draw_momentum(p.q.size());
      double h0 = -s.logp + kinetic(s);
      Point n = leapfrog(s, eps);
      double h = -n.logp + kinetic(n);
      return std::isfinite(h) ? h0 - h : -INFINITY;
    };
    double a = accept_log() > std::log(0.5) ? 1.0 : -1.0;
    for (int i = 0; i < 100; ++i) {
      double la = accept_log();
      if (a * la <= -a * std::log(2.0)) break;
      eps *= std::pow(2.0, a);
    }
  }

  Vec inv_mass;                       // diagonal metric
  Vec dense_inv_mass, momentum_map;  // dense metric (empty: diagonal)
  double eps = 1.0;

 private:
  const LogDensity& f_;
  SamplerSettings s_;
  std::mt19937_64 rng_;
  double h0_ = 0.0;
};

// Nesterov dual averaging of log step size towards the target acceptance (Hoffman & Gelman 2014).
struct DualAveraging {
  double mu = 0.0, h_bar = 0.0, log_eps = 0.0, log_eps_bar = 0.0;
  int64_t m = 0;
  void restart(double eps) {
    mu = std::log(10 * eps);
    h_bar = log_eps_bar = 0.0;
    log_eps = std::log(eps);
    m = 0;
  }
  double update(double accept, double target) {
    ++m;
    const double t0 = 10, gamma = 0.05, kappa = 0.75;
    double w = 1.0 / (m + t0);
    h_bar = (1 - w) * h_bar + w * (target - accept);
    log_eps = mu - std::sqrt(static_cast<double>(m)) / gamma * h_bar;
    double mk = std::pow(static_cast<double>(m), -kappa);
    log_eps_bar = mk * log_eps + (1 - mk) * log_eps_bar;
    return std::exp(log_eps);
  }
};

// Stan's warm-up windows: a fast initial buffer, doubling slow windows that estimate the mass
// matrix, a fast terminal buffer.
struct Windows {
  int64_t start = 0;          // first iteration of the first slow window
  std::vector<int64_t> ends;  // iterations at which slow windows end
};
Windows slow_windows(int64_t warmup) {
  int64_t init = 75, term = 50, window = 25;
  if (warmup < init + term + window) {
    init = static_cast<int64_t>(0.15 * warmup);
    term = static_cast<int64_t>(0.1 * warmup);
    window = warmup - init - term;
  }
  Windows w;
  w.start = init;
  auto& ends = w.ends;
  int64_t start = init, end_slow = warmup - term;
  while (start < end_slow && window > 0) {
    int64_t next = start + window;
    if (next + 2 * window > end_slow) next = end_slow;  // the last window absorbs the rest
    ends.push_back(next);
    start = next;
    window *= 2;
  }
  return w;
}

}  // namespace

ChainResult run_chain(const LogDensity& log_density, const torch::Tensor& start, const SamplerSettings& s,
                      uint64_t key) {
  if (s.warmup < 0 || s.draws < 1)
    throw InvalidArgument(fmt::format("sampler needs warmup >= 0 and draws >= 1, got {} and {}", s.warmup, s.draws));
  auto q0 = start.to(at::kCPU, at::kDouble).contiguous().reshape({-1});
  const int64_t d = q0.numel();
  Sampler sampler(log_density, s, d, key);
  Point p;
  p.q.assign(q0.data_ptr<double>(), q0.data_ptr<double>() + d);
  sampler.evaluate(p);
  if (!std::isfinite(p.logp))
    throw NumericalError("the log density is not finite at the starting point; start elsewhere");
  sampler.reasonable_step(p);
  DualAveraging da;
  da.restart(sampler.eps);
  auto windows = s.adapt_mass ? slow_windows(s.warmup) : Windows{};
  size_t next_end = 0;
  Vec sum(d, 0.0), sum_sq(d, 0.0);
  std::vector<torch::Tensor> window_draws;  // dense metric: the window's draws
  int64_t count = 0;

  ChainResult out;
  out.draws = at::empty({s.draws, d}, at::kFloat);
  out.log_density = at::empty({s.draws}, at::kDouble);
  auto* draws = out.draws.data_ptr<float>();
  double accept_sum = 0.0, leapfrog_sum = 0.0;
  for (int64_t it = 0; it < s.warmup + s.draws; ++it) {
    auto t = s.steps > 0 ? sampler.hmc(p) : sampler.nuts(p);
    p = std::move(t.point);
    if (s.on_iteration) s.on_iteration(it);
    if (it < s.warmup) {
      sampler.eps = da.update(t.accept, s.target_accept);
      const bool in_window = next_end < windows.ends.size() && it >= windows.start;
      if (in_window) {
        for (int64_t i = 0; i < d; ++i) {
          sum[i] += p.q[i];
          sum_sq[i] += p.q[i] * p.q[i];
        }
        if (s.dense_mass) window_draws.push_back(at::tensor(p.q, at::kDouble));
        ++count;
      }
      if (in_window && it + 1 == windows.ends[next_end]) {
        // Regularized variance, shrunk towards 1e-3 as in Stan.
        const double n = static_cast<double>(count);
        for (int64_t i = 0; i < d; ++i) {
          double mean = sum[i] / n;
          double var = std::max(0.0, sum_sq[i] / n - mean * mean) * n / (n - 1.0);
          sampler.inv_mass[i] = var * (n / (n + 5.0)) + 1e-3 * (5.0 / (n + 5.0));
        }
        if (s.dense_mass) {
          auto x = at::stack(window_draws);
          auto c = x - x.mean(0);
          auto cov = c.t().mm(c) / (n - 1.0);
          sampler.set_dense(cov * (n / (n + 5.0)) + 1e-3 * (5.0 / (n + 5.0)) * at::eye(d, at::kDouble));
          window_draws.clear();
        }
        std::fill(sum.begin(), sum.end(), 0.0);
        std::fill(sum_sq.begin(), sum_sq.end(), 0.0);
        count = 0;
        ++next_end;
        sampler.reasonable_step(p);
        da.restart(sampler.eps);
      }
      if (it + 1 == s.warmup) sampler.eps = std::exp(da.log_eps_bar);
      continue;
    }
    const int64_t i = it - s.warmup;
    std::copy(p.q.begin(), p.q.end(), draws + i * d);
    out.log_density[i] = p.logp;
    out.divergences += t.divergent ? 1 : 0;
    accept_sum += t.accept;
    leapfrog_sum += static_cast<double>(t.leapfrogs);
  }
  out.step_size = sampler.eps;
  out.inverse_mass = sampler.dense() ? at::tensor(sampler.dense_inv_mass, at::kDouble).view({d, d})
                                     : at::tensor(sampler.inv_mass, at::kDouble);
  out.mean_accept = accept_sum / static_cast<double>(s.draws);
  out.mean_leapfrogs = leapfrog_sum / static_cast<double>(s.draws);
  return out;
}

}  // namespace credence
