// expect_parallel_work: the pool's sleeping workers wake ahead of a job, and jobs stay exact around it.
// expect_serial_work: its polling workers sleep at once, and a descriptor it names wakes them once.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <functional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "mlxd/core/thread_pool.h"
#include "proc_threads.h"

namespace mlxd {
namespace {

// The thread id of this process's thread named `name`, or "" when there is none.
std::string tid_named(const std::string& name) {
  for (const auto& [tid, n] : test::threads_by_id())
    if (n == name) return tid;
  return "";
}

// The thread id of the pool's worker, once it has started (up to 2 s); "" when it does not.
std::string pool_worker() {
  std::string tid;
  for (int i = 0; i < 200 && tid.empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    tid = tid_named("mlxd-pool-1");
  }
  return tid;
}

// How often thread `tid` has gone to sleep.
long sleeps_of(const std::string& tid) {
  std::ifstream status("/proc/self/task/" + tid + "/status");
  const std::string key = "voluntary_ctxt_switches:";
  for (std::string line; std::getline(status, line);)
    if (line.rfind(key, 0) == 0) return std::stol(line.substr(key.size()));
  return -1;
}

// Microseconds thread `tid` has run on a core.
double cpu_us_of(const std::string& tid) {
  std::ifstream schedstat("/proc/self/task/" + tid + "/schedstat");
  double ns = -1;
  schedstat >> ns;
  return ns / 1000;
}

// Polls sleeps_of(tid) for up to 2 s until it differs from `before`; returns the last count.
long sleeps_after(const std::string& tid, long before) {
  long now = sleeps_of(tid);
  for (int i = 0; i < 400 && now == before; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    now = sleeps_of(tid);
  }
  return now;
}

class PoolHeadsUp : public ::testing::Test {
 protected:
  void SetUp() override {
    saved_ = num_threads();
    set_num_threads(2);
  }
  void TearDown() override { set_num_threads(saved_); }
  int saved_ = 1;
};

TEST_F(PoolHeadsUp, WakesASleepingWorkerThatSleepsAgainWhenNoJobComes) {
  const std::string tid = pool_worker();
  ASSERT_FALSE(tid.empty()) << "no pool worker";
  // Asleep: nothing wakes it.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const long before = sleeps_of(tid);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_EQ(sleeps_of(tid), before);
  // Told of a job, it wakes, polls for a moment, and goes back to sleep when none comes.
  expect_parallel_work();
  EXPECT_GT(sleeps_after(tid, before), before);
}

// After a job a worker polls for the next one for a while (0.2 ms); told that none comes soon, it sleeps at
// once and leaves the core to other processes (pipeline stages on one machine).
TEST_F(PoolHeadsUp, ExpectSerialWorkPutsThePollingWorkerToSleepAtOnce) {
  const std::string tid = pool_worker();
  ASSERT_FALSE(tid.empty()) << "no pool worker";
  // The median round: on a VM, time the host takes the core from a running thread can be charged to it (one
  // loaded run charged the worker 8 ms over 20 rounds), while a worker that polls on polls in every round.
  constexpr int rounds = 21;
  std::vector<double> polled_us;
  for (int round = 0; round < rounds; ++round) {
    expect_parallel_work();
    parallel_for(2, 1, [](int64_t, int64_t) {
      const auto end = std::chrono::steady_clock::now() + std::chrono::microseconds(300);
      while (std::chrono::steady_clock::now() < end) {
      }
    });
    expect_serial_work();
    const double before = cpu_us_of(tid);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    polled_us.push_back(cpu_us_of(tid) - before);
  }
  std::nth_element(polled_us.begin(), polled_us.begin() + rounds / 2, polled_us.end());
  EXPECT_LT(polled_us[rounds / 2], 60.0) << "microseconds the worker ran after a job and expect_serial_work";
}

// A pipeline stage names the socket its next step comes on: the step's bytes wake the resting worker, once.
TEST_F(PoolHeadsUp, ADescriptorNamedAtRestWakesTheWorkerOnceUntilTheNextRest) {
  const std::string tid = pool_worker();
  ASSERT_FALSE(tid.empty()) << "no pool worker";
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  const int watched[] = {pipe_fds[0]};
  expect_serial_work(watched);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const long asleep = sleeps_of(tid);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_EQ(sleeps_of(tid), asleep) << "nothing was written, yet the worker woke";
  // The bytes arrive: it wakes, polls for a job for a moment, and sleeps again.
  ASSERT_EQ(::write(pipe_fds[1], "x", 1), 1);
  const long woke = sleeps_after(tid, asleep);
  EXPECT_GT(woke, asleep);
  // The pipe stays readable (nobody reads it), but the same rest does not wake the worker again.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const long settled = sleeps_of(tid);
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  EXPECT_EQ(sleeps_of(tid), settled) << "the worker kept waking on bytes it was told of once";
  // The next rest naming it again wakes it at once; a rest that names nothing does not.
  expect_serial_work(watched);
  EXPECT_GT(sleeps_after(tid, settled), settled);
  expect_serial_work();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const long unwatched = sleeps_of(tid);
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  EXPECT_EQ(sleeps_of(tid), unwatched) << "a rest without descriptors left the pipe watched";
  // Jobs still run in full after all this.
  std::vector<int> hits(100, 0);
  parallel_for(100, 7, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) ++hits[static_cast<size_t>(i)];
  });
  EXPECT_EQ(std::count(hits.begin(), hits.end(), 1), 100);
  ::close(pipe_fds[0]);
  ::close(pipe_fds[1]);
}

TEST_F(PoolHeadsUp, ARestNamingTooManyDescriptorsIsRefused) {
  const int fds[] = {0, 0, 0, 0, 0};
  EXPECT_THROW(expect_serial_work(fds), std::invalid_argument);
}

// 2000 jobs, each checked to run every index once, while another thread calls aside(0), aside(1), ... without
// pause (the calls land before, during and after the jobs) and in_round() runs before every third job.
void expect_jobs_run_every_index_once(const std::function<void(int)>& aside,
                                      const std::function<void()>& in_round) {
  std::atomic<bool> stop = false;
  std::thread other([&] {
    for (int i = 0; !stop; ++i) aside(i);
  });
  for (int round = 0; round < 2000 && !::testing::Test::HasFailure(); ++round) {
    if (round % 3 == 0) in_round();
    std::vector<int> hits(1000, 0);
    parallel_for(static_cast<int64_t>(hits.size()), 7, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) ++hits[i];
    });
    for (size_t i = 0; i < hits.size(); ++i) {
      if (hits[i] != 1) {
        ADD_FAILURE() << "index " << i << " ran " << hits[i] << " times in round " << round;
        break;
      }
    }
    if (round % 500 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  stop = true;
  other.join();
}

TEST_F(PoolHeadsUp, JobsAroundHeadsUpsRunEveryIndexOnce) {
  expect_jobs_run_every_index_once([](int) { expect_parallel_work(); }, [] { expect_parallel_work(); });
}

TEST_F(PoolHeadsUp, JobsAroundRestsAndHeadsUpsRunEveryIndexOnce) {
  expect_jobs_run_every_index_once([](int i) { i % 2 ? expect_serial_work() : expect_parallel_work(); },
                                   [] { expect_serial_work(); });
}

}  // namespace
}  // namespace mlxd
