#pragma once
/// A small self-describing file of named tensors plus JSON metadata.
#include <torch/types.h>

#include <map>
#include <nlohmann/json.hpp>
#include <string>

namespace credence {

using TensorMap = std::map<std::string, torch::Tensor>;

/// Writes `meta` and `tensors` (moved to CPU) to `path` atomically (temp file + rename).
/// Refuses to replace an existing file unless `overwrite` is set.
void save_tensor_file(const std::string& path, const nlohmann::json& meta, const TensorMap& tensors,
                      bool overwrite);
/// Whether `path` starts as a file written by save_tensor_file does (false if unreadable).
bool is_tensor_file(const std::string& path);
/// Reads a file written by save_tensor_file; IoError if missing, truncated or not such a file.
std::pair<nlohmann::json, TensorMap> load_tensor_file(const std::string& path);

}  // namespace credence
