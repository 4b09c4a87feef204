// Thin POSIX file helpers for the io module. Every failure throws io_error("<context>: <what>: <strerror>"),
// where `context` names the file for the reader of the message, e.g. "safetensors: /models/x.safetensors".
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace mlxd::detail {

// An owned file descriptor, closed on destruction.
class unique_fd {
 public:
  unique_fd() = default;
  explicit unique_fd(int fd) : fd_(fd) {}
  unique_fd(unique_fd&& other) noexcept : fd_(other.release()) {}
  unique_fd& operator=(unique_fd&& other) noexcept;
  unique_fd(const unique_fd&) = delete;
  unique_fd& operator=(const unique_fd&) = delete;
  ~unique_fd();

  int get() const { return fd_; }
  int release();
  // Closes now, reporting an error (close can report a failed delayed write).
  void close(std::string_view context);

 private:
  int fd_ = -1;
};

[[noreturn]] void throw_errno(std::string_view context, std::string_view what, int err);

// Opens an existing regular file for reading.
unique_fd open_for_read(const std::filesystem::path& path, std::string_view context);
uint64_t file_size(int fd, std::string_view context);
// Reads exactly `n` bytes at `offset`; a file that ends early is an error.
void read_exact_at(int fd, uint64_t offset, void* dst, size_t n, std::string_view context);
// Writes all `n` bytes at the current position, retrying short writes and EINTR.
void write_all(int fd, const void* src, size_t n, std::string_view context);

}  // namespace mlxd::detail
