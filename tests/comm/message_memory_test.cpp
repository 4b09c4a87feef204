// Large gRPC message buffers come from the heap and stay there once freed (comm/grpc/message_memory.h).
#include <gtest/gtest.h>

#include <cstdlib>

#include "comm/grpc/message_memory.h"

// Sanitizers bring their own allocator, which neither mallopt nor mallinfo2 describe.
#if defined(__GLIBC__) && !defined(__SANITIZE_THREAD__) && !defined(__SANITIZE_ADDRESS__)
#include <malloc.h>

namespace mlxd::comm::rpc {
namespace {

TEST(MessageMemory, MegabyteBuffersStayInTheHeap) {
  keep_message_buffers();
  keep_message_buffers();            // once per process; a second call changes nothing
  constexpr size_t bytes = 3 << 20;  // above glibc's default threshold, under ours
  const size_t mapped_before = mallinfo2().hblks;
  void* p = std::malloc(bytes);
  ASSERT_NE(p, nullptr);
  static_cast<volatile char*>(p)[bytes - 1] = 1;
  EXPECT_EQ(mallinfo2().hblks, mapped_before) << "a 3 MB buffer got a mapping of its own";
  std::free(p);
  EXPECT_GE(mallinfo2().fordblks, bytes) << "the freed buffer was given back to the system";
}

}  // namespace
}  // namespace mlxd::comm::rpc
#endif
