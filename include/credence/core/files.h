#pragma once
/// Files in and out. Inputs that cannot be read say why; outputs never damage what is there: paths
/// are checked before any work starts, and content reaches its path only through a uniquely named
/// temporary file that is renamed over it.
#include <functional>
#include <ostream>
#include <string>

namespace credence {

/// IoError unless `path` is a regular file this process can read; the message says which of
/// missing, a directory (or other non-file) or unreadable it is. `what` names it ("CSV file").
void check_input_file(const std::string& path, const std::string& what);

/// IoError unless `path` can take a new file: refuses an empty path, an existing directory,
/// device, FIFO or socket, a symbolic link (credence never writes through links: name the
/// target), an existing regular file unless `overwrite`, and a missing or unwritable parent
/// directory. `option` (e.g. "--out") names the flag in messages. Call it before long work.
void check_output_path(const std::string& path, bool overwrite, const std::string& option = "--out");

/// Checks `path` as above, then writes it through a temporary in the same directory that
/// `write` fills; renamed over `path` on success, removed on an exception, SIGINT or SIGTERM.
void write_file_atomically(const std::string& path, bool overwrite,
                           const std::function<void(std::ostream&)>& write, const std::string& option = "--out");

/// A uniquely named temporary beside `path` that is removed unless `commit()` renames it over
/// `path` (and on SIGINT/SIGTERM). For writers that need a file name rather than a stream.
class TemporaryOutput {
 public:
  explicit TemporaryOutput(const std::string& path);
  ~TemporaryOutput();
  TemporaryOutput(const TemporaryOutput&) = delete;
  TemporaryOutput& operator=(const TemporaryOutput&) = delete;
  const std::string& temp_path() const { return temp_; }
  void commit();

 private:
  std::string path_, temp_;
  int slot_ = -1;
  bool committed_ = false;
};

}  // namespace credence
