// Dataset methods, shared loader helpers, and load_data: scheme dispatch, checks, holdout carving.
#include <ATen/ATen.h>
#include <fmt/format.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>

#include "credence/core/error.h"
#include "credence/core/files.h"
#include "credence/core/rng.h"
#include "loaders.h"

namespace credence {

const char* to_string(Task task) {
  switch (task) {
    case Task::Regression: return "regression";
    case Task::Classification: return "classification";
  }
  return "unknown";
}

std::vector<int64_t> Dataset::input_shape() const {
  if (!x.defined() || x.dim() < 1) return {};
  auto sizes = x.sizes();
  return std::vector<int64_t>(sizes.begin() + 1, sizes.end());
}

Dataset Dataset::subset(const torch::Tensor& index) const {
  Dataset out = *this;
  if (!x.defined()) return out;
  at::Tensor idx = index.to(x.device(), at::kLong).reshape({-1});
  out.x = x.index_select(0, idx);
  if (y.defined()) out.y = y.index_select(0, idx.to(y.device()));
  return out;
}

Dataset Dataset::to(torch::Device device) const {
  Dataset out = *this;
  if (x.defined()) out.x = x.to(device);
  if (y.defined()) out.y = y.to(device);
  return out;
}

namespace data_detail {

std::set<std::string> with_common_keys(std::set<std::string> keys) {
  keys.insert("holdout");
  keys.insert("holdout_seed");
  keys.insert("per_class");
  keys.insert("per_class_seed");
  keys.insert("labels");
  keys.insert("renumber");
  return keys;
}

long spec_int(const Spec& spec, const std::string& key, long fallback) {
  try {
    return spec.get_int(key, fallback);
  } catch (const InvalidArgument& e) {
    throw DataError(e.what());
  }
}

double spec_double(const Spec& spec, const std::string& key, double fallback) {
  try {
    return spec.get_double(key, fallback);
  } catch (const InvalidArgument& e) {
    throw DataError(e.what());
  }
}

bool parse_number(const std::string& token, double& out) {
  if (token.empty()) return false;
  char* end = nullptr;
  errno = 0;
  out = std::strtod(token.c_str(), &end);
  // ERANGE on underflow is harmless (denormal/zero); on overflow the value is inf, caught later.
  return end == token.c_str() + token.size();
}

at::Tensor make_tensor(const std::vector<double>& values, at::IntArrayRef shape,
                       at::ScalarType dtype) {
  auto* data = const_cast<double*>(values.data());
  return at::from_blob(data, shape, at::TensorOptions().dtype(at::kDouble))
      .to(at::TensorOptions().dtype(dtype), /*non_blocking=*/false, /*copy=*/true);
}

at::Tensor make_labels(const std::vector<int64_t>& labels) {
  auto* data = const_cast<int64_t*>(labels.data());
  return at::from_blob(data, {static_cast<int64_t>(labels.size())},
                       at::TensorOptions().dtype(at::kLong))
      .clone();
}

std::vector<std::string> read_lines(const std::string& path, const std::string& hint) {
  try {
    check_input_file(path, "file");
  } catch (const IoError& e) {
    throw DataError(hint.empty() ? std::string(e.what()) : fmt::format("{} ({})", e.what(), hint));
  }
  std::ifstream in(path);
  if (!in) throw DataError(fmt::format("cannot open '{}'", path));
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  if (in.bad()) throw DataError(fmt::format("error while reading '{}'", path));
  return lines;
}

uint64_t derive_seed(uint64_t seed, uint64_t stream) {
  uint64_t z = seed + 0x9E3779B97F4A7C15ULL * (stream + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

std::vector<bool> parse_label_set(const Spec& spec, const std::string& key, int64_t num_classes) {
  const std::string value = spec.get(key, "");
  auto bad = [&]() {
    return DataError(fmt::format("spec '{}': {} '{}' must be a range A-B or a list a,b,c of labels in 0..{} "
                                 "(e.g. '{}=0-4' or '{}=0,3,5')",
                                 spec.text, key, value, num_classes - 1, key, key));
  };
  auto label = [&](const std::string& text) {
    double v = 0;
    if (!parse_number(trim(text), v) || v != std::floor(v) || v < 0 || v >= static_cast<double>(num_classes))
      throw bad();
    return static_cast<int64_t>(v);
  };
  std::vector<bool> keep(num_classes, false);
  const size_t dash = value.find('-');
  if (dash != std::string::npos) {
    const int64_t a = label(value.substr(0, dash)), b = label(value.substr(dash + 1));
    if (a > b) throw bad();
    for (int64_t c = a; c <= b; ++c) keep[c] = true;
  } else {
    for (const auto& item : split(value, ',')) keep[label(item)] = true;
  }
  return keep;
}

}  // namespace data_detail

namespace {

using namespace data_detail;

void check_finite(const Dataset& d) {
  auto report = [&](const at::Tensor& t, const char* what) {
    if (!t.defined() || !t.is_floating_point()) return;
    at::Tensor bad = (~at::isfinite(t)).reshape({t.size(0), -1}).any(1);
    if (!bad.any().item<bool>()) return;
    int64_t row = bad.nonzero().min().item<int64_t>();
    throw DataError(fmt::format("data '{}': {} of example {} (0-based) is NaN or inf; "
                                "clean the data or drop that row",
                                d.name, what, row));
  };
  report(d.x, "input");
  report(d.y, "target");
}

// A holdout size: a fraction in (0, 1) of n, or a whole count >= 1.
int64_t holdout_count(const Spec& spec, const std::string& part, const std::string& value,
                      int64_t n) {
  double v = 0;
  if (!parse_number(trim(value), v) || !std::isfinite(v) || v <= 0 ||
      (v >= 1 && v != std::floor(v)))
    throw DataError(fmt::format(
        "spec '{}': holdout '{}:{}' must be a fraction in (0, 1) or a whole count >= 1 "
        "(e.g. 'holdout=val:0.1,cal:200')",
        spec.text, part, value));
  int64_t count = v < 1 ? static_cast<int64_t>(std::llround(v * static_cast<double>(n)))
                        : static_cast<int64_t>(v);
  if (count == 0)
    throw DataError(fmt::format(
        "spec '{}': empty split: holdout '{}:{}' of {} examples leaves no '{}' examples; "
        "use a larger fraction or a count",
        spec.text, part, value, n, part));
  return count;
}

// labels=A-B or a,b,c: only the examples with those labels (the label space stays, unless
// renumber=1 numbers the kept labels 0..K-1 in order: a task of its own).
Dataset keep_labels(const Spec& spec, Dataset all) {
  if (spec.has("renumber") && !spec.has("labels"))
    throw DataError(fmt::format("spec '{}': renumber= needs labels= (e.g. 'labels=5-9&renumber=1')", spec.text));
  if (!spec.has("labels")) return all;
  if (all.task != Task::Classification)
    throw DataError(fmt::format("spec '{}': labels= applies to classification data only", spec.text));
  const auto keep = parse_label_set(spec, "labels", all.num_classes);
  auto y = all.y.to(at::kCPU);
  auto acc = y.accessor<int64_t, 1>();
  std::vector<int64_t> chosen;
  for (int64_t i = 0; i < y.size(0); ++i)
    if (keep[acc[i]]) chosen.push_back(i);
  if (chosen.empty())
    throw DataError(fmt::format("spec '{}': no example has labels {}", spec.text, spec.get("labels", "")));
  auto kept = all.subset(at::tensor(chosen, at::kLong));
  if (spec_int(spec, "renumber", 0) != 0) {
    std::vector<int64_t> code(all.num_classes, -1);
    int64_t k = 0;
    for (int64_t c = 0; c < all.num_classes; ++c)
      if (keep[c]) code[c] = k++;
    kept.y = at::tensor(code, at::kLong).to(kept.y.device()).index_select(0, kept.y);
    kept.num_classes = k;
  }
  return kept;
}

// per_class=K: K examples of each class present, drawn by per_class_seed (few-label tasks).
Dataset draw_per_class(const Spec& spec, Dataset all) {
  if (!spec.has("per_class")) {
    if (spec.has("per_class_seed"))
      throw DataError(fmt::format("spec '{}': per_class_seed given without per_class (e.g. 'per_class=10&per_class_seed=1')",
                                  spec.text));
    return all;
  }
  const long k = spec_int(spec, "per_class", 0);
  if (k < 1) throw DataError(fmt::format("spec '{}': per_class must be >= 1, got {}", spec.text, k));
  if (all.task != Task::Classification)
    throw DataError(fmt::format("spec '{}': per_class applies to classification data only", spec.text));
  const long seed = spec_int(spec, "per_class_seed", 0);
  auto perm = keyed_permutation(all.size(), rng_key(static_cast<uint64_t>(seed), Stream::Holdout, 1));
  auto labels = all.y.to(at::kCPU).index_select(0, perm);
  std::vector<int64_t> taken(all.num_classes, 0), chosen;
  auto lab = labels.accessor<int64_t, 1>();
  auto idx = perm.accessor<int64_t, 1>();
  for (int64_t i = 0; i < labels.size(0); ++i)
    if (taken[lab[i]] < k) {
      ++taken[lab[i]];
      chosen.push_back(idx[i]);
    }
  for (int64_t c = 0; c < all.num_classes; ++c)
    if (taken[c] > 0 && taken[c] < k)
      throw DataError(fmt::format("spec '{}': class {} has only {} examples, fewer than per_class={}", spec.text, c,
                                  taken[c], k));
  std::sort(chosen.begin(), chosen.end());  // keep the original order
  return all.subset(at::tensor(chosen, at::kLong));
}

DataParts carve(const Spec& spec, Dataset all) {
  DataParts parts;
  if (!spec.has("holdout")) {
    if (spec.has("holdout_seed"))
      throw DataError(fmt::format("spec '{}': holdout_seed given without holdout "
                                  "(e.g. 'holdout=val:0.1&holdout_seed=1')",
                                  spec.text));
    parts.fit = std::move(all);
    return parts;
  }
  const int64_t n = all.size();
  int64_t n_val = 0, n_cal = 0;
  bool has_val = false, has_cal = false;
  for (const auto& item : split(spec.get("holdout", ""), ',')) {
    size_t colon = item.find(':');
    std::string name = trim(item.substr(0, colon));
    if (colon == std::string::npos || (name != "val" && name != "cal"))
      throw DataError(fmt::format("spec '{}': holdout part '{}' is not val:F or cal:F "
                                  "(e.g. 'holdout=val:0.1,cal:0.1')",
                                  spec.text, item));
    bool& seen = name == "val" ? has_val : has_cal;
    if (seen)
      throw DataError(fmt::format("spec '{}': holdout part '{}' given twice", spec.text, name));
    seen = true;
    (name == "val" ? n_val : n_cal) = holdout_count(spec, name, item.substr(colon + 1), n);
  }
  if (n_val + n_cal >= n)
    throw DataError(fmt::format(
        "spec '{}': empty split: holdout takes {} val + {} cal of {} examples, leaving none to "
        "fit on; use smaller holdout parts",
        spec.text, n_val, n_cal, n));
  long seed = spec_int(spec, "holdout_seed", 0);
  at::Tensor perm = keyed_permutation(n, rng_key(static_cast<uint64_t>(seed), Stream::Holdout));
  auto take = [&](int64_t begin, int64_t end) {
    return std::get<0>(perm.slice(0, begin, end).sort());  // keep the original order
  };
  auto named = [&](Dataset d, const char* part) {
    d.name = fmt::format("{} ({})", spec.text, part);
    return d;
  };
  if (has_val) parts.val = named(all.subset(take(0, n_val)), "val");
  if (has_cal) parts.cal = named(all.subset(take(n_val, n_val + n_cal)), "cal");
  parts.fit = all.subset(take(n_val + n_cal, n));
  return parts;
}

}  // namespace

std::string fmnist_dir() {
  const char* env = std::getenv("CREDENCE_FMNIST_DIR");
  if (env != nullptr && env[0] != '\0') return env;
  return "/usr/share/datasets/fashion-mnist";
}

DataParts load_data(const std::string& text, const DataOptions& options) {
  if (!at::isFloatingType(options.dtype))
    throw InvalidArgument(fmt::format("data dtype must be floating (float32 or float64), got {}",
                                      c10::toString(options.dtype)));
  Spec spec;
  try {
    spec = Spec::parse(text);
  } catch (const InvalidArgument& e) {
    throw DataError(e.what());
  }
  Dataset all;
  if (spec.scheme == "fmnist") {
    all = load_fmnist(spec, options);
  } else if (spec.scheme == "uci") {
    all = load_uci(spec, options);
  } else if (spec.scheme == "csv") {
    all = load_csv(spec, options);
  } else if (spec.scheme == "synthetic") {
    all = load_synthetic(spec, options);
  } else {
    throw DataError(fmt::format(
        "data spec '{}': unknown scheme '{}' (known: fmnist:train|test, uci:DIR, csv:PATH, "
        "synthetic:sine|moons|linear|tokens)",
        text, spec.scheme));
  }
  all.name = text;
  if (all.size() == 0)
    throw DataError(fmt::format("data spec '{}': empty split: no examples were loaded", text));
  check_finite(all);
  return carve(spec, draw_per_class(spec, keep_labels(spec, std::move(all))));
}

}  // namespace credence
