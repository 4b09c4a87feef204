#include "io/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>

#include "mlxd/io/io_error.h"

namespace mlxd::detail {

namespace {

std::atomic<uint64_t> temp_counter{0};

void fsync_or_throw(int fd, std::string_view context, std::string_view what) {
  while (::fsync(fd) != 0) {
    if (errno != EINTR) throw_errno(context, what, errno);
  }
}

}  // namespace

atomic_file::atomic_file(std::filesystem::path path, std::string context)
    : path_(std::move(path)), context_(std::move(context)) {
  if (!path_.has_filename()) throw io_error(context_ + ": path names no file");
  const std::filesystem::path dir = path_.parent_path().empty() ? "." : path_.parent_path();
  // The counter keeps names unique in this process; O_EXCL catches a stale file left by a dead process.
  for (int attempt = 0;; ++attempt) {
    std::string name = ".";
    name.append(path_.filename().string()).append(".tmp-").append(std::to_string(::getpid()));
    name.append("-").append(std::to_string(temp_counter.fetch_add(1)));
    temp_path_ = dir / name;
    const int fd = ::open(temp_path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd >= 0) {
      fd_ = unique_fd(fd);
      return;
    }
    if ((errno != EEXIST && errno != EINTR) || attempt == 100) {
      throw_errno(context_, "cannot create temporary file " + temp_path_.string(), errno);
    }
  }
}

atomic_file::~atomic_file() {
  if (committed_) return;
  fd_ = unique_fd();
  ::unlink(temp_path_.c_str());
}

void atomic_file::write(const void* data, size_t n) {
  write_all(fd_.get(), data, n, context_);
}

void atomic_file::commit() {
  fsync_or_throw(fd_.get(), context_, "fsync failed");
  fd_.close(context_);
  if (::rename(temp_path_.c_str(), path_.c_str()) != 0) throw_errno(context_, "rename failed", errno);
  committed_ = true;
  const std::filesystem::path dir = path_.parent_path().empty() ? "." : path_.parent_path();
  unique_fd dir_fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir_fd.get() < 0) throw_errno(context_, "cannot open directory to fsync it", errno);
  fsync_or_throw(dir_fd.get(), context_, "directory fsync failed");
}

}  // namespace mlxd::detail
