#include "credence/core/tensor_io.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <cstdio>
#include <fstream>

#include "credence/core/error.h"

namespace credence {
namespace {
const char kMagic[] = "CREDENCE-TENSORS\n";

std::string dtype_name(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return "float32";
    case at::kDouble: return "float64";
    case at::kLong: return "int64";
    case at::kInt: return "int32";
    default: throw NotSupported(fmt::format("cannot save tensors of type {}", c10::toString(t)));
  }
}
at::ScalarType dtype_from(const std::string& s) {
  if (s == "float32") return at::kFloat;
  if (s == "float64") return at::kDouble;
  if (s == "int64") return at::kLong;
  if (s == "int32") return at::kInt;
  throw IoError(fmt::format("unknown tensor type '{}' in file", s));
}
bool file_exists(const std::string& path) { return std::ifstream(path).good(); }
}  // namespace

void save_tensor_file(const std::string& path, const nlohmann::json& meta, const TensorMap& tensors,
                      bool overwrite) {
  if (!overwrite && file_exists(path))
    throw IoError(fmt::format("'{}' exists; choose another --out or pass --force to replace it", path));
  nlohmann::json header = {{"meta", meta}, {"tensors", nlohmann::json::array()}};
  std::vector<at::Tensor> blobs;
  int64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    if (!t.defined()) continue;
    auto c = t.detach().to(at::kCPU).contiguous();
    int64_t bytes = c.numel() * c.element_size();
    header["tensors"].push_back(
        {{"name", name}, {"dtype", dtype_name(c.scalar_type())}, {"shape", c.sizes().vec()},
         {"offset", offset}, {"bytes", bytes}});
    offset += bytes;
    blobs.push_back(c);
  }
  std::string text = header.dump();
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw IoError(fmt::format("cannot write '{}' (check the directory exists and is writable)", path));
    uint64_t len = text.size();
    out.write(kMagic, sizeof(kMagic) - 1);
    out.write(reinterpret_cast<const char*>(&len), sizeof(len));
    out.write(text.data(), text.size());
    for (const auto& c : blobs)
      out.write(static_cast<const char*>(c.data_ptr()), c.numel() * c.element_size());
    if (!out) throw IoError(fmt::format("writing '{}' failed (disk full?)", tmp));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    throw IoError(fmt::format("cannot move '{}' to '{}'", tmp, path));
}

std::pair<nlohmann::json, TensorMap> load_tensor_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError(fmt::format("cannot open '{}': no such file (check the path)", path));
  std::string magic(sizeof(kMagic) - 1, '\0');
  in.read(magic.data(), magic.size());
  if (!in || magic != kMagic)
    throw IoError(fmt::format("'{}' is not a credence file (wrong header)", path));
  uint64_t len = 0;
  in.read(reinterpret_cast<char*>(&len), sizeof(len));
  if (!in || len > (1ull << 30)) throw IoError(fmt::format("'{}' is truncated or corrupt", path));
  std::string text(len, '\0');
  in.read(text.data(), len);
  if (!in) throw IoError(fmt::format("'{}' is truncated", path));
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(text);
  } catch (const std::exception& e) {
    throw IoError(fmt::format("'{}' has a corrupt header: {}", path, e.what()));
  }
  TensorMap tensors;
  for (const auto& entry : header.at("tensors")) {
    std::vector<int64_t> shape = entry.at("shape").get<std::vector<int64_t>>();
    auto t = at::empty(shape, at::TensorOptions().dtype(dtype_from(entry.at("dtype"))));
    int64_t bytes = entry.at("bytes").get<int64_t>();
    if (bytes != t.numel() * t.element_size()) throw IoError(fmt::format("'{}' is corrupt", path));
    in.read(static_cast<char*>(t.data_ptr()), bytes);
    if (!in) throw IoError(fmt::format("'{}' is truncated (tensor '{}')", path, entry.at("name").get<std::string>()));
    tensors[entry.at("name").get<std::string>()] = t;
  }
  return {header.at("meta"), tensors};
}

}  // namespace credence
