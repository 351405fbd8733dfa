#include "credence/core/files.h"

#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>

#include "credence/core/error.h"

namespace credence {
namespace {

namespace fs = std::filesystem;

// Temporaries still open, for the signal handler; fixed storage because a handler may not allocate.
constexpr int kSlots = 16;
std::array<std::array<char, 4096>, kSlots> g_temp_names;
enum SlotState : int { kFree, kReserved, kArmed };
std::array<std::atomic<int>, kSlots> g_temp_state;

extern "C" void remove_temporaries_and_reraise(int sig) {
  for (int i = 0; i < kSlots; ++i)
    if (g_temp_state[i].load() == kArmed) ::unlink(g_temp_names[i].data());
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

void install_handlers_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    for (int sig : {SIGINT, SIGTERM}) {
      struct sigaction current {};
      sigaction(sig, nullptr, &current);
      if (current.sa_handler == SIG_DFL) std::signal(sig, remove_temporaries_and_reraise);
    }
  });
}

int claim_slot(const std::string& name) {
  if (name.size() >= g_temp_names[0].size()) return -1;
  install_handlers_once();
  for (int i = 0; i < kSlots; ++i) {
    int expected = kFree;
    if (g_temp_state[i].compare_exchange_strong(expected, kReserved)) {
      std::memcpy(g_temp_names[i].data(), name.c_str(), name.size() + 1);
      g_temp_state[i] = kArmed;  // the handler sees only complete names
      return i;
    }
  }
  return -1;  // more than kSlots files at once: still removed on failure, not on a signal
}

std::string kind_of(const fs::file_status& st) {
  switch (st.type()) {
    case fs::file_type::directory: return "a directory";
    case fs::file_type::character:
    case fs::file_type::block: return "a device";
    case fs::file_type::fifo: return "a FIFO";
    case fs::file_type::socket: return "a socket";
    default: return "not a regular file";
  }
}

}  // namespace

void check_input_file(const std::string& path, const std::string& what) {
  std::error_code ec;
  auto st = fs::status(path, ec);
  if (!fs::exists(st)) throw IoError(fmt::format("{} '{}' does not exist (check the path)", what, path));
  if (st.type() != fs::file_type::regular)
    throw IoError(fmt::format("{} '{}' is {}; give a file", what, path, kind_of(st)));
  if (::access(path.c_str(), R_OK) != 0)
    throw IoError(fmt::format("{} '{}' exists but cannot be read: permission denied (check its permissions)", what,
                              path));
}

void check_output_path(const std::string& path, bool overwrite, const std::string& option) {
  if (path.empty()) throw IoError(fmt::format("{} is empty: give the file to write", option));
  std::error_code ec;
  auto link = fs::symlink_status(path, ec);
  if (link.type() == fs::file_type::symlink)
    throw IoError(fmt::format("{} '{}' is a symbolic link; credence never writes through links "
                              "(give the path it points to, or another name)",
                              option, path));
  if (fs::exists(link)) {
    if (link.type() != fs::file_type::regular)
      throw IoError(fmt::format("{} '{}' is {}; only regular files are written (choose a file name)", option,
                                path, kind_of(link)));
    if (!overwrite)
      throw IoError(fmt::format("'{}' exists; choose another {} or pass --force to replace it", path, option));
  }
  fs::path parent = fs::path(path).parent_path();
  if (parent.empty()) parent = ".";
  auto dir = fs::status(parent, ec);
  if (!fs::exists(dir))
    throw IoError(fmt::format("{} '{}': the directory '{}' does not exist (create it first)", option, path,
                              parent.string()));
  if (dir.type() != fs::file_type::directory)
    throw IoError(fmt::format("{} '{}': '{}' is not a directory", option, path, parent.string()));
  if (::access(parent.c_str(), W_OK | X_OK) != 0)
    throw IoError(fmt::format("{} '{}': the directory '{}' is not writable (choose another place)", option,
                              path, parent.string()));
}

TemporaryOutput::TemporaryOutput(const std::string& path) : path_(path) {
  fs::path p(path);
  fs::path dir = p.parent_path().empty() ? fs::path(".") : p.parent_path();
  std::string tmpl = (dir / ("." + p.filename().string() + ".XXXXXX")).string();
  int fd = ::mkstemp(tmpl.data());
  if (fd < 0)
    throw IoError(fmt::format("cannot create a file in '{}' ({}); check it exists and is writable", dir.string(),
                              std::strerror(errno)));
  mode_t mask = ::umask(0);
  ::umask(mask);
  ::fchmod(fd, 0666 & ~mask);  // as an ordinary new file would be, not mkstemp's 0600
  ::close(fd);
  temp_ = tmpl;
  slot_ = claim_slot(temp_);
}

TemporaryOutput::~TemporaryOutput() {
  if (!committed_) ::unlink(temp_.c_str());
  if (slot_ >= 0) g_temp_state[slot_] = kFree;
}

void TemporaryOutput::commit() {
  if (std::rename(temp_.c_str(), path_.c_str()) != 0)
    throw IoError(fmt::format("cannot move '{}' to '{}': {}", temp_, path_, std::strerror(errno)));
  committed_ = true;
}

void write_file_atomically(const std::string& path, bool overwrite,
                           const std::function<void(std::ostream&)>& write, const std::string& option) {
  check_output_path(path, overwrite, option);
  TemporaryOutput temp(path);
  {
    std::ofstream out(temp.temp_path(), std::ios::binary | std::ios::trunc);
    if (!out) throw IoError(fmt::format("cannot write '{}'", temp.temp_path()));
    write(out);
    out.flush();
    if (!out) throw IoError(fmt::format("writing '{}' failed (is the disk full?)", path));
  }
  temp.commit();
}

}  // namespace credence
