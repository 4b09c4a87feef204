// pin_threads: each kernel thread runs on one CPU, the same for every process started with it, and jobs stay
// exact. ctest runs each test in a process of its own, so the pinning ends with it.
#include <gtest/gtest.h>
#include <sched.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "mlxd/core/thread_pool.h"
#include "proc_threads.h"

namespace mlxd {
namespace {

// The CPUs thread `tid` (0: this one) may run on, in order.
std::vector<int> cpus_of(pid_t tid) {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> cpus;
  if (sched_getaffinity(tid, sizeof set, &set) != 0) return cpus;
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &set)) cpus.push_back(c);
  return cpus;
}

// The thread id of the pool's worker named `name`, waiting up to 2 s for it to start; 0 when it does not.
pid_t worker_named(const std::string& name) {
  for (int i = 0; i < 200; ++i) {
    for (const auto& [tid, n] : test::threads_by_id())
      if (n == name) return static_cast<pid_t>(std::stol(tid));
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return 0;
}

// cpus_of(tid) once it is `want`: a new worker pins itself as it starts. Waits up to 2 s.
std::vector<int> settled_cpus_of(pid_t tid, const std::vector<int>& want) {
  std::vector<int> now = cpus_of(tid);
  for (int i = 0; i < 200 && now != want; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    now = cpus_of(tid);
  }
  return now;
}

TEST(PoolPin, WorkerIRunsOnTheIthAllowedCpuAndCallersOnTheFirst) {
  const std::vector<int> allowed = cpus_of(0);
  ASSERT_FALSE(allowed.empty());
  set_num_threads(3);  // more threads than a 2-CPU machine has: the third wraps around
  pin_threads();
  std::vector<int> hits(1000, 0);
  parallel_for(1000, 7, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) ++hits[static_cast<size_t>(i)];
  });
  for (size_t i = 0; i < hits.size(); ++i) ASSERT_EQ(hits[i], 1) << "index " << i;
  EXPECT_EQ(cpus_of(0), std::vector<int>{allowed[0]}) << "the caller";
  for (int i = 1; i < 3; ++i) {
    const pid_t tid = worker_named("mlxd-pool-" + std::to_string(i));
    ASSERT_NE(tid, 0) << "no worker " << i;
    EXPECT_EQ(cpus_of(tid), std::vector<int>{allowed[static_cast<size_t>(i) % allowed.size()]})
        << "worker " << i;
  }
  // Another thread that calls parallel_for is pinned at its first job, to the callers' CPU.
  std::vector<int> other;
  std::thread([&] {
    parallel_for(100, 1, [](int64_t, int64_t) {});
    other = cpus_of(0);
  }).join();
  EXPECT_EQ(other, std::vector<int>{allowed[0]});
  // A resize keeps the pinning.
  set_num_threads(2);
  const pid_t tid = worker_named("mlxd-pool-1");
  ASSERT_NE(tid, 0);
  const std::vector<int> want{allowed[1 % allowed.size()]};
  EXPECT_EQ(settled_cpus_of(tid, want), want);
}

}  // namespace
}  // namespace mlxd
