#include "credence/core/tensor_io.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <unistd.h>
#include <zlib.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include "credence/core/error.h"
#include "credence/core/files.h"

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
}  // namespace

bool is_tensor_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::string magic(sizeof(kMagic) - 1, '\0');
  return in.read(magic.data(), magic.size()) && magic == kMagic;
}

namespace {

// A trailer after the tensors: the tag, then the CRC-32 of every byte before the tag.
const char kChecksumTag[] = "CREDENCE-CRC32\n";
constexpr size_t kTrailer = sizeof(kChecksumTag) - 1 + sizeof(uint32_t);

// Files written since checksums were added end in a trailer; older ones load with a notice.
// Returns whether the file has the trailer.
bool verify_checksum(const std::string& path) {
  check_input_file(path, "file");
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw IoError(fmt::format("cannot open '{}'", path));
  const auto size = static_cast<uint64_t>(in.tellg());
  if (!is_tensor_file(path)) throw IoError(fmt::format("'{}' is not a credence file (wrong header)", path));
  std::string trailer(kTrailer, '\0');
  if (size >= kTrailer + sizeof(kMagic)) {
    in.seekg(static_cast<std::streamoff>(size - kTrailer));
    in.read(trailer.data(), kTrailer);
  }
  if (trailer.compare(0, sizeof(kChecksumTag) - 1, kChecksumTag) != 0) {
    fmt::print(stderr, "note: '{}' has no checksum (written by an older credence); loading it unchecked\n", path);
    return false;
  }
  uint32_t stored = 0;
  std::memcpy(&stored, trailer.data() + sizeof(kChecksumTag) - 1, sizeof(stored));
  in.seekg(0);
  uLong crc = crc32(0L, Z_NULL, 0);
  std::vector<char> buf(1 << 20);
  for (uint64_t left = size - kTrailer; left > 0;) {
    const auto n = static_cast<std::streamsize>(std::min<uint64_t>(left, buf.size()));
    if (!in.read(buf.data(), n)) throw IoError(fmt::format("'{}' could not be read to the end", path));
    crc = crc32_z(crc, reinterpret_cast<const Bytef*>(buf.data()), static_cast<size_t>(n));
    left -= static_cast<uint64_t>(n);
  }
  if (static_cast<uint32_t>(crc) != stored)
    throw IoError(fmt::format("'{}' is corrupted: its checksum does not match its content (the file changed after "
                              "credence wrote it); restore a copy or fit again",
                              path));
  return true;
}
}  // namespace

void save_tensor_file(const std::string& path, const nlohmann::json& meta, const TensorMap& tensors,
                      bool overwrite) {
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
  write_file_atomically(path, overwrite, [&](std::ostream& out) {
    uLong crc = crc32(0L, Z_NULL, 0);
    auto put = [&](const void* data, size_t size) {
      if (size == 0) return;  // zlib treats a null buffer (an empty tensor's) as "start over"
      out.write(static_cast<const char*>(data), size);
      crc = crc32_z(crc, static_cast<const Bytef*>(data), size);
    };
    uint64_t len = text.size();
    put(kMagic, sizeof(kMagic) - 1);
    put(&len, sizeof(len));
    put(text.data(), text.size());
    for (const auto& c : blobs) put(c.data_ptr(), c.numel() * c.element_size());
    uint32_t sum = static_cast<uint32_t>(crc);
    out.write(kChecksumTag, sizeof(kChecksumTag) - 1);
    out.write(reinterpret_cast<const char*>(&sum), sizeof(sum));
  }, "file");
}


std::pair<nlohmann::json, TensorMap> load_tensor_file(const std::string& path) {
  const bool has_trailer = verify_checksum(path);
  const auto size = std::filesystem::file_size(path);
  std::ifstream in(path, std::ios::binary);
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
  // The data must end where the trailer starts (or, in an older file, where the file ends).
  if (static_cast<uint64_t>(in.tellg()) != size - (has_trailer ? kTrailer : 0))
    throw IoError(fmt::format("'{}' is truncated or corrupt (its size does not match its contents)", path));
  return {header.at("meta"), tensors};
}

}  // namespace credence
