#include "io/mapped_file.h"

#include <sys/mman.h>

#include <cerrno>
#include <stdexcept>

#include "io/posix_file.h"

namespace mlxd::detail {

std::shared_ptr<const mapped_file> mapped_file::map(int fd, size_t size, std::string_view context) {
  if (size == 0) throw std::invalid_argument("[mapped_file::map] cannot map 0 bytes");
  void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  if (p == MAP_FAILED) throw_errno(context, "mmap failed", errno);
  std::unique_ptr<const mapped_file> owner;
  try {
    owner.reset(new mapped_file(static_cast<const std::byte*>(p), size));
  } catch (...) {
    ::munmap(p, size);
    throw;
  }
  return owner;
}

mapped_file::~mapped_file() {
  ::munmap(const_cast<std::byte*>(data_), size_);
}

}  // namespace mlxd::detail
