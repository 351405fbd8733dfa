// The repository stands alone: no file but Markdown reaches for a directory beside the checkout.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;

// Every file of the source tree, less hidden folders (.git) and build folders (CMakeCache.txt).
std::vector<fs::path> source_files(const fs::path& root) {
  std::vector<fs::path> files;
  for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator(); ++it) {
    const fs::path& p = it->path();
    if (it->is_directory() &&
        (p.filename().string().rfind('.', 0) == 0 || fs::exists(p / "CMakeCache.txt"))) {
      it.disable_recursion_pending();
    } else if (it->is_regular_file() && p.extension() != ".md") {
      files.push_back(p);
    }
  }
  return files;
}

TEST(Standalone, NoFileOutsideMarkdownNamesASiblingSharedFolder) {
  const std::string needle = std::string("..") + "/shared";  // split so this file does not match
  std::vector<std::string> offenders;
  auto files = source_files(CREDENCE_SOURCE_DIR);
  ASSERT_GT(files.size(), 100u) << "the source tree at " << CREDENCE_SOURCE_DIR << " looks empty";
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (text.find(needle) != std::string::npos) offenders.push_back(f.string());
  }
  EXPECT_TRUE(offenders.empty()) << "files naming " << needle << ": " << testing::PrintToString(offenders);
}

TEST(Standalone, DataTheTestsAndBenchmarksUseIsInTheRepository) {
  for (const char* set : {"bostonHousing", "concrete", "energy", "wine-quality-red", "yacht"}) {
    EXPECT_TRUE(fs::exists(fs::path(CREDENCE_DATA_DIR) / "uci" / set / "data.txt")) << set;
  }
  EXPECT_TRUE(fs::exists(fs::path(CREDENCE_TEST_DATA_DIR) / "golden" / "laplace_golden.json"));
}

}  // namespace
