// A read-only, private memory mapping of a whole file. Arrays that view the mapping hold a shared_ptr to it
// as their keep-alive, so it is unmapped when the last of them dies.
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <string_view>

namespace mlxd::detail {

class mapped_file {
 public:
  // Maps `size` bytes (> 0) of `fd` with PROT_READ and MAP_PRIVATE. The descriptor may be closed afterwards.
  static std::shared_ptr<const mapped_file> map(int fd, size_t size, std::string_view context);
  ~mapped_file();
  mapped_file(const mapped_file&) = delete;
  mapped_file& operator=(const mapped_file&) = delete;

  std::span<const std::byte> bytes() const { return {data_, size_}; }

 private:
  mapped_file(const std::byte* data, size_t size) : data_(data), size_(size) {}
  const std::byte* data_;
  size_t size_;
};

}  // namespace mlxd::detail
