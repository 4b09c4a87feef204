// Crash-safe replacement of a file's contents: readers of `path` see the old file or the complete new one,
// never a mix. Bytes go to a new temporary file in the same directory; commit() fsyncs it, renames it over
// `path` and fsyncs the directory so the rename itself is durable. Not thread-safe; one writer per object.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>

#include "io/posix_file.h"

namespace mlxd::detail {

class atomic_file {
 public:
  // Creates the temporary file (named ".<file name>.tmp-<pid>-<n>" beside `path`, mode 0666 less the umask).
  // `context` prefixes error messages. Throws io_error.
  atomic_file(std::filesystem::path path, std::string context);
  // Removes the temporary file unless commit() succeeded.
  ~atomic_file();
  atomic_file(const atomic_file&) = delete;
  atomic_file& operator=(const atomic_file&) = delete;

  void write(const void* data, size_t n);
  // Once the rename has happened the new contents are in place; if the directory fsync after it fails,
  // commit() still throws, since the rename may not survive a crash.
  void commit();

  const std::filesystem::path& temp_path() const { return temp_path_; }

 private:
  std::filesystem::path path_;
  std::filesystem::path temp_path_;
  std::string context_;
  unique_fd fd_;
  bool committed_ = false;
};

}  // namespace mlxd::detail
