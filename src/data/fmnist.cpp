// fmnist:train|test[?n=N&classes=A-B|a,b,c&shift=rotate:DEG|noise:SD] from Debian's
// dataset-fashion-mnist IDX gz files.
#include <ATen/ATen.h>
#include <fmt/format.h>
#include <zlib.h>

#include <array>
#include <filesystem>
#include <memory>

#include "credence/core/error.h"
#include "loaders.h"

namespace credence::data_detail {
namespace {

constexpr int64_t kClasses = 10;
constexpr uint32_t kImageMagic = 2051, kLabelMagic = 2049;
const char* kFix = "install dataset-fashion-mnist (apt-get install dataset-fashion-mnist) or "
                   "point CREDENCE_FMNIST_DIR at a directory holding the IDX .gz files";

struct GzCloser {
  void operator()(gzFile_s* f) const { gzclose(f); }
};

class IdxFile {
 public:
  explicit IdxFile(std::string path) : path_(std::move(path)) {
    if (!std::filesystem::is_regular_file(path_))
      throw DataError(fmt::format("Fashion-MNIST file '{}' is missing: {}", path_, kFix));
    file_.reset(gzopen(path_.c_str(), "rb"));
    if (!file_) throw DataError(fmt::format("cannot open '{}': {}", path_, kFix));
  }

  // Reads exactly `size` bytes; a short read means a truncated or corrupt file.
  void read(void* out, size_t size, const char* what) {
    auto* p = static_cast<unsigned char*>(out);
    while (size > 0) {
      unsigned chunk = static_cast<unsigned>(std::min<size_t>(size, 1u << 30));
      int got = gzread(file_.get(), p, chunk);
      if (got <= 0)
        throw DataError(fmt::format("'{}' is truncated or corrupt while reading {}: {}", path_,
                                    what, kFix));
      p += got;
      size -= static_cast<size_t>(got);
    }
  }

  uint32_t read_u32(const char* what) {
    std::array<unsigned char, 4> b{};
    read(b.data(), 4, what);
    return (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) | (uint32_t{b[2]} << 8) | b[3];
  }

  void expect(uint32_t got, uint32_t want, const char* what) {
    if (got != want)
      throw DataError(fmt::format("'{}' is not a Fashion-MNIST IDX file ({} is {}, expected {}): {}",
                                  path_, what, got, want, kFix));
  }

  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::unique_ptr<gzFile_s, GzCloser> file_;
};

}  // namespace

Dataset load_fmnist(const Spec& spec, const DataOptions& options) {
  spec.check_keys(with_common_keys({"n", "classes", "shift"}), /*data_error=*/true);
  if (spec.body != "train" && spec.body != "test")
    throw DataError(fmt::format("spec '{}': fmnist part '{}' is unknown (use fmnist:train or "
                                "fmnist:test)",
                                spec.text, spec.body));
  long n_wanted = spec_int(spec, "n", -1);
  if (spec.has("n") && n_wanted < 1)
    throw DataError(fmt::format("spec '{}': n must be >= 1, got {}", spec.text, n_wanted));
  std::vector<bool> keep(kClasses, true);
  if (spec.has("classes")) keep = parse_label_set(spec, "classes", kClasses);

  const std::string dir = fmnist_dir();
  const std::string prefix = spec.body == "train" ? "train" : "t10k";
  if (!std::filesystem::is_directory(dir))
    throw DataError(fmt::format("Fashion-MNIST directory '{}' does not exist: {}", dir, kFix));

  // Labels first: they decide which (and how many leading) images are needed.
  IdxFile labels_file(dir + "/" + prefix + "-labels-idx1-ubyte.gz");
  labels_file.expect(labels_file.read_u32("the magic number"), kLabelMagic, "the magic number");
  const uint32_t count = labels_file.read_u32("the label count");
  if (count == 0 || count > 10'000'000)
    throw DataError(fmt::format("'{}' claims {} examples, which is not plausible (corrupt file): {}",
                                labels_file.path(), count, kFix));
  std::vector<unsigned char> raw_labels(count);
  labels_file.read(raw_labels.data(), count, "the labels");

  std::vector<int64_t> selected, labels;
  for (uint32_t i = 0; i < count; ++i) {
    if (raw_labels[i] >= kClasses)
      throw DataError(fmt::format("'{}': label {} of example {} is out of range 0..9: {}",
                                  labels_file.path(), int{raw_labels[i]}, i, kFix));
    if (!keep[raw_labels[i]]) continue;
    if (n_wanted > 0 && static_cast<long>(selected.size()) >= n_wanted) break;
    selected.push_back(i);
    labels.push_back(raw_labels[i]);
  }
  if (selected.empty())
    throw DataError(fmt::format("spec '{}': empty split: no examples of the requested classes",
                                spec.text));

  IdxFile images_file(dir + "/" + prefix + "-images-idx3-ubyte.gz");
  images_file.expect(images_file.read_u32("the magic number"), kImageMagic, "the magic number");
  images_file.expect(images_file.read_u32("the image count"), count,
                     "the image count (must match the labels file)");
  images_file.expect(images_file.read_u32("the row count"), 28, "the row count");
  images_file.expect(images_file.read_u32("the column count"), 28, "the column count");
  const int64_t pixels = 28 * 28;
  const int64_t needed = selected.back() + 1;  // only the leading images that are used
  auto raw = at::empty({needed, pixels}, at::TensorOptions().dtype(at::kByte));
  images_file.read(raw.data_ptr<uint8_t>(), static_cast<size_t>(needed * pixels), "the images");

  at::Tensor index = make_labels(selected);
  at::Tensor x = raw.index_select(0, index).to(options.dtype).div_(255.0).reshape(
      {static_cast<int64_t>(selected.size()), 1, 28, 28});

  Dataset d;
  d.x = shift_images(spec, x);
  d.y = make_labels(labels);
  d.task = Task::Classification;
  d.num_classes = kClasses;
  d.standardize_inputs = false;
  return d;
}

}  // namespace credence::data_detail
