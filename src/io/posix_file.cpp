#include "io/posix_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "mlxd/io/io_error.h"

namespace mlxd::detail {

unique_fd& unique_fd::operator=(unique_fd&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.release();
  }
  return *this;
}

unique_fd::~unique_fd() {
  if (fd_ >= 0) ::close(fd_);
}

int unique_fd::release() {
  const int fd = fd_;
  fd_ = -1;
  return fd;
}

void unique_fd::close(std::string_view context) {
  // Linux releases the descriptor even when close fails, so it is never retried.
  if (fd_ >= 0 && ::close(release()) != 0) throw_errno(context, "close failed", errno);
}

void throw_errno(std::string_view context, std::string_view what, int err) {
  std::string message(context);
  message.append(": ").append(what).append(": ").append(std::strerror(err));
  throw io_error(message);
}

unique_fd open_for_read(const std::filesystem::path& path, std::string_view context) {
  int fd = -1;
  do {
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) throw_errno(context, "cannot open", errno);
  unique_fd owned(fd);
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw_errno(context, "cannot stat", errno);
  if (!S_ISREG(st.st_mode)) throw io_error(std::string(context) + ": not a regular file");
  return owned;
}

uint64_t file_size(int fd, std::string_view context) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw_errno(context, "cannot stat", errno);
  return static_cast<uint64_t>(st.st_size);
}

void read_exact_at(int fd, uint64_t offset, void* dst, size_t n, std::string_view context) {
  auto* out = static_cast<char*>(dst);
  while (n > 0) {
    const ssize_t got = ::pread(fd, out, n, static_cast<off_t>(offset));
    if (got < 0) {
      if (errno == EINTR) continue;
      throw_errno(context, "read failed", errno);
    }
    if (got == 0) {
      throw io_error(std::string(context) + ": file ended early (was it truncated while being read?)");
    }
    out += got;
    offset += static_cast<uint64_t>(got);
    n -= static_cast<size_t>(got);
  }
}

void write_all(int fd, const void* src, size_t n, std::string_view context) {
  const auto* in = static_cast<const char*>(src);
  while (n > 0) {
    const ssize_t put = ::write(fd, in, n);
    if (put < 0) {
      if (errno == EINTR) continue;
      throw_errno(context, "write failed", errno);
    }
    in += put;
    n -= static_cast<size_t>(put);
  }
}

}  // namespace mlxd::detail
