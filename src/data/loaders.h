#pragma once
/// Internal to src/data: one loader per --data scheme, plus shared helpers.
#include <ATen/ATen.h>

#include <set>
#include <string>
#include <vector>

#include "credence/core/spec.h"
#include "credence/data/dataset.h"

namespace credence::data_detail {

/// Keys every data spec accepts on top of its own (`holdout`, `holdout_seed`).
std::set<std::string> with_common_keys(std::set<std::string> keys);

/// Each loader checks its own keys and returns the whole loaded set (before holdout carving).
Dataset load_fmnist(const Spec& spec, const DataOptions& options);
Dataset load_uci(const Spec& spec, const DataOptions& options);
Dataset load_csv(const Spec& spec, const DataOptions& options);
Dataset load_synthetic(const Spec& spec, const DataOptions& options);

/// Applies `shift=rotate:DEG|noise:SD` from the spec to images [N, C, H, W] (else returns x).
at::Tensor shift_images(const Spec& spec, const at::Tensor& x);

/// Spec values converted strictly; failures are DataError naming the spec and key.
long spec_int(const Spec& spec, const std::string& key, long fallback);
double spec_double(const Spec& spec, const std::string& key, double fallback);

/// Parses one number token strictly (no trailing junk); false if it is not a number.
bool parse_number(const std::string& token, double& out);

/// The labels that spec key `key` names, as a range A-B or a list a,b,c of labels in 0..C-1:
/// keep[c] for each of the `num_classes`. DataError naming the key with an example otherwise.
std::vector<bool> parse_label_set(const Spec& spec, const std::string& key, int64_t num_classes);

/// Owning tensor copies of host buffers: doubles to `dtype`, labels to int64.
at::Tensor make_tensor(const std::vector<double>& values, at::IntArrayRef shape, at::ScalarType dtype);
at::Tensor make_labels(const std::vector<int64_t>& labels);

/// The column names of a CSV file's header row (the first non-blank line of `lines`; quoted
/// names, BOM), and its index in `line`; DataError naming `path` when there is none or it is malformed.
std::vector<std::string> csv_header(const std::vector<std::string>& lines, const std::string& path,
                                    size_t* line = nullptr);

/// Reads a text file into lines; DataError naming the file (and `hint`) if it cannot be opened.
std::vector<std::string> read_lines(const std::string& path, const std::string& hint);

/// Mixes a seed with a stream id, so that e.g. train and test draws differ (splitmix64).
uint64_t derive_seed(uint64_t seed, uint64_t stream);

}  // namespace credence::data_detail
