// Output files: checked before work, written through unique temporaries, never through links or
// into devices; inputs that cannot be read say why.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>

#include "credence/core/error.h"
#include "credence/core/files.h"

namespace {

namespace fs = std::filesystem;
using credence::IoError;

class Files : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "credence_files_XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    root_ = tmpl;
  }
  void TearDown() override { fs::remove_all(root_); }
  std::string at(const std::string& name) const { return (root_ / name).string(); }
  size_t entries() const { return static_cast<size_t>(std::distance(fs::directory_iterator(root_), {})); }
  fs::path root_;
};

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void expect_io_error(const std::function<void()>& f, const std::string& part) {
  try {
    f();
    FAIL() << "no error; expected one mentioning " << part;
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
  }
}

TEST_F(Files, OutputPathsAreCheckedBeforeWork) {
  using credence::check_output_path;
  expect_io_error([] { check_output_path("", true, "--out"); }, "--out is empty");
  expect_io_error([&] { check_output_path(root_.string(), true, "--out"); }, "a directory");
  ASSERT_EQ(mkfifo(at("fifo").c_str(), 0600), 0);
  expect_io_error([&] { check_output_path(at("fifo"), true, "--out"); }, "a FIFO");
  expect_io_error([&] { check_output_path("/dev/null", true, "--out"); }, "a device");
  expect_io_error([&] { check_output_path(at("no/such/dir/f.crd"), true, "--out"); }, "does not exist");
  std::ofstream(at("plain")) << "x";
  expect_io_error([&] { check_output_path(at("plain/f.crd"), true, "--out"); }, "not a directory");
  expect_io_error([&] { check_output_path(at("plain"), false, "--out"); }, "--force");
  EXPECT_NO_THROW(check_output_path(at("plain"), true, "--out"));
  EXPECT_NO_THROW(check_output_path(at("new"), false, "--out"));
  fs::create_symlink(at("plain"), at("link"));
  expect_io_error([&] { check_output_path(at("link"), true, "--out"); }, "symbolic link");
  fs::create_symlink(at("missing"), at("dangling"));
  expect_io_error([&] { check_output_path(at("dangling"), true, "--out"); }, "symbolic link");
  if (geteuid() != 0) {  // root may write anywhere
    fs::create_directory(at("ro"));
    fs::permissions(at("ro"), fs::perms::owner_read | fs::perms::owner_exec);
    expect_io_error([&] { check_output_path(at("ro/f"), false, "--out"); }, "not writable");
  }
}

TEST_F(Files, AtomicWritesReplaceOnlyOnSuccessAndLeaveNoTemporaries) {
  const std::string target = at("out.txt");
  credence::write_file_atomically(target, false, [](std::ostream& o) { o << "first"; });
  EXPECT_EQ(slurp(target), "first");
  expect_io_error([&] { credence::write_file_atomically(target, false, [](std::ostream& o) { o << "x"; }); }, "exists");
  EXPECT_THROW(credence::write_file_atomically(target, true,
                                               [](std::ostream& o) {
                                                 o << "partial";
                                                 throw std::runtime_error("writer failed");
                                               }),
               std::runtime_error);
  EXPECT_EQ(slurp(target), "first");  // untouched
  EXPECT_EQ(entries(), 1u);                                                // no temporary left
  struct stat st {};
  ASSERT_EQ(stat(target.c_str(), &st), 0);
  mode_t mask = umask(0);
  umask(mask);
  EXPECT_EQ(st.st_mode & 0777, 0666 & ~mask);  // an ordinary file's mode, not mkstemp's 0600
}

TEST_F(Files, TemporariesAreUniqueAndRemovedOnSigterm) {
  {
    credence::TemporaryOutput a(at("f.crd")), b(at("f.crd"));
    EXPECT_NE(a.temp_path(), b.temp_path());
    EXPECT_TRUE(fs::exists(a.temp_path()));
    EXPECT_EQ(fs::path(a.temp_path()).parent_path(), root_);
  }
  EXPECT_EQ(entries(), 0u);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    credence::TemporaryOutput t(at("g.crd"));
    std::ofstream(t.temp_path()) << "half written";
    std::raise(SIGTERM);
    _exit(0);  // not reached
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status));
  EXPECT_EQ(WTERMSIG(status), SIGTERM);
  EXPECT_EQ(entries(), 0u);
  EXPECT_FALSE(fs::exists(at("g.crd")));
}

TEST_F(Files, InputsThatCannotBeReadSayWhy) {
  using credence::check_input_file;
  expect_io_error([&] { check_input_file(at("none.csv"), "CSV file"); }, "does not exist");
  expect_io_error([&] { check_input_file(root_.string(), "CSV file"); }, "is a directory");
  std::ofstream(at("secret")) << "x";
  fs::permissions(at("secret"), fs::perms::none);
  if (geteuid() != 0) expect_io_error([&] { check_input_file(at("secret"), "file"); }, "permission denied");
  fs::permissions(at("secret"), fs::perms::owner_all);
  EXPECT_NO_THROW(check_input_file(at("secret"), "file"));
}

}  // namespace
