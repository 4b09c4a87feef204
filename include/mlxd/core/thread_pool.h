// The one pool of kernel threads. Work is split into chunks whose boundaries depend only on the problem size
// and grain, never on the thread count, so any op that computes each output from a fixed chunk gives the same
// bits for every thread count.
#pragma once

#include <cstdint>
#include <functional>
#include <span>

namespace mlxd {

// Threads used by kernels, including the caller. Defaults to MLXD_NUM_THREADS or the hardware concurrency.
int num_threads();
// n >= 1. OpenBLAS stays single-threaded; large products are split over this pool (src/core/sgemm.h).
void set_num_threads(int n);

// Calls fn(begin, end) on disjoint chunks covering [0, n); chunks hold `grain` items (the last may hold
// fewer). Runs inline when n <= grain, with one thread, or when called from inside another parallel_for.
// Exceptions thrown by fn are rethrown in the caller (the first one wins).
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

// From now on each kernel thread runs on one CPU: the pool's worker i on the i-th of the CPUs this thread
// may use (wrapping), and every thread that calls parallel_for on the first. Pipeline stages of one machine
// started this way take turns on the same cores, so a hand-off wakes the next stage's thread on the core its
// sender is leaving instead of waking an idle one (on a VM an idle virtual CPU takes 0.05-0.1 ms to wake).
// A thread the kernel will not pin (its CPU taken away since) runs where it may.
void pin_threads();

// Wakes the pool's sleeping workers and keeps them polling for a moment, for a caller about to call
// parallel_for after some serial work (a pipeline stage that was just given a step): a worker that slept
// for milliseconds takes 0.05-0.1 ms to wake on a VM, which then overlaps that serial work.
void expect_parallel_work();

// Puts the pool's polling workers to sleep now, for a caller that will run no parallel_for for a while (a
// pipeline stage waiting for its next step): their polling would take a core from another process of this
// machine. The next job or expect_parallel_work wakes them, and so, once, does any of `wake_fds` (at most 4)
// turning readable: a stage names the sockets its next step comes on, so that the step's arrival wakes the
// workers with its own thread instead of that thread waking them (tens of microseconds on a VM) before it
// can compute.
void expect_serial_work(std::span<const int> wake_fds = {});

// Like parallel_for, but thread t first takes, in order, the chunks of the t-th of as many contiguous runs
// as threads, then helps the others from the far ends of theirs. For work bound by streaming memory: each
// thread reads one long stream (chunks taken in turn restart the hardware prefetcher) and the same rows on
// every call (its caches keep them), yet a thread that another process slows does not hold up the rest.
void parallel_for_owned(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

// A grain for parallel_for_owned over n items: a few chunks per thread, each a multiple of `multiple`.
int64_t owned_grain(int64_t n, int64_t multiple);

}  // namespace mlxd
