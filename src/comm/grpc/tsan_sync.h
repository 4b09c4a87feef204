// Happens-before edges ThreadSanitizer cannot see by itself. An operation started on one thread completes
// on whichever thread drives the completion queue, ordered by synchronisation inside (uninstrumented) gRPC:
// without these, what the starting thread wrote looks raced with the completion's handler. They compile to
// nothing unless the build uses -fsanitize=thread.
#pragma once

#if defined(__SANITIZE_THREAD__)
extern "C" void __tsan_acquire(void* addr);
extern "C" void __tsan_release(void* addr);
#endif

namespace mlxd::comm::rpc {

// Everything this thread did so far happens before what follows a later tsan_acquire(key) on any thread.
inline void tsan_release([[maybe_unused]] void* key) {
#if defined(__SANITIZE_THREAD__)
  __tsan_release(key);
#endif
}

inline void tsan_acquire([[maybe_unused]] void* key) {
#if defined(__SANITIZE_THREAD__)
  __tsan_acquire(key);
#endif
}

}  // namespace mlxd::comm::rpc
