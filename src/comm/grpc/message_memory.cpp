#include "comm/grpc/message_memory.h"

#include <mutex>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace mlxd::comm::rpc {

void keep_message_buffers() {
#if defined(__GLIBC__)
  static std::once_flag once;
  std::call_once(once, [] {
    // Both: a fixed mmap threshold also turns off glibc's own raising of the trim threshold, and heap tops
    // trimmed at the default 128 KB fault in again just as fresh mappings do.
    mallopt(M_MMAP_THRESHOLD, 4 << 20);
    mallopt(M_TRIM_THRESHOLD, 64 << 20);
  });
#endif
}

}  // namespace mlxd::comm::rpc
