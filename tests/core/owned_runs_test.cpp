// parallel_for_owned: every chunk runs once; each thread takes its own run first, in order, and the others
// take what a blocked thread has not begun.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include "mlxd/core/thread_pool.h"

namespace mlxd {
namespace {

class OwnedRuns : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override {
    saved_ = num_threads();
    set_num_threads(GetParam());
  }
  void TearDown() override { set_num_threads(saved_); }
  int saved_ = 1;
};

TEST_P(OwnedRuns, CoverEveryIndexOnceBesidePlainJobs) {
  for (int job = 0; job < 600; ++job) {
    // Pauses longer than the workers' polling put them to sleep before some jobs, so some join late.
    if (job % 5 == 0) std::this_thread::sleep_for(std::chrono::microseconds(40 * (job % 9)));
    const int64_t n = 1 + (job * 37) % 1000, grain = 1 + job % 13;
    std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
    auto count = [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)].fetch_add(1);
    };
    (job % 2 ? parallel_for_owned : parallel_for)(n, grain, count);
    for (const auto& h : hits) ASSERT_EQ(h.load(), 1) << "job " << job << ", n " << n << ", grain " << grain;
  }
}

// With 2 threads and 16 chunks the caller's run is chunks 0-7: it starts there and goes up; whatever it takes
// of the worker's run (8-15) it takes from the end down. The worker does the same the other way round.
TEST(OwnedRunsOfTwo, EachThreadTakesItsOwnRunInOrderThenHelpsFromTheFarEnd) {
  const int saved = num_threads();
  set_num_threads(2);
  const std::thread::id caller = std::this_thread::get_id();
  for (int job = 0; job < 200; ++job) {
    std::mutex mu;
    std::vector<int64_t> mine, theirs;  // chunks in the order the caller and the worker began them
    parallel_for_owned(16, 1, [&](int64_t b, int64_t) {
      const auto end = std::chrono::steady_clock::now() + std::chrono::microseconds(20);
      {
        std::lock_guard lock(mu);
        (std::this_thread::get_id() == caller ? mine : theirs).push_back(b);
      }
      while (std::chrono::steady_clock::now() < end) {
      }
    });
    ASSERT_EQ(mine.size() + theirs.size(), 16u);
    // A thread finds its own run empty only once the other has done both runs (a caller that lost its core
    // for the whole job takes nothing), so whatever it takes first is its run's front.
    if (!mine.empty()) {
      EXPECT_EQ(mine.front(), 0) << "job " << job;
    }
    if (!theirs.empty()) {
      EXPECT_EQ(theirs.front(), 8) << "job " << job;
    }
    for (const auto* seq : {&mine, &theirs}) {
      const int64_t own_first = seq == &mine ? 0 : 8;
      int64_t last_own = -1, last_helped = 16;
      bool helping = false;
      for (int64_t c : *seq) {
        const bool own = c >= own_first && c < own_first + 8;
        if (own) {
          EXPECT_FALSE(helping) << "chunk " << c << " of its own run after helping, job " << job;
          EXPECT_GT(c, last_own) << "job " << job;
          last_own = c;
        } else {
          helping = true;
          EXPECT_LT(c, last_helped) << "job " << job;
          last_helped = c;
        }
      }
    }
  }
  set_num_threads(saved);
}

// A thread stopped inside its first chunk keeps no other chunk of its run from running: the chunk that
// frees it is the last of the others. With one run per thread and no helping, this would never end.
TEST_P(OwnedRuns, ThreadsTakeTheRunOfAThreadThatIsHeldUp) {
  const std::thread::id caller = std::this_thread::get_id();
  for (int job = 0; job < 50; ++job) {
    constexpr int64_t n = 64;
    std::atomic<int64_t> done = 0;
    std::atomic<bool> held = false;  // one worker is held at a time
    parallel_for_owned(n, 1, [&](int64_t, int64_t) {
      if (std::this_thread::get_id() != caller && !held.exchange(true)) {
        const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (done.load() < n - 1 && std::chrono::steady_clock::now() < give_up) std::this_thread::yield();
        ASSERT_EQ(done.load(), n - 1) << "the held thread's run was left waiting, job " << job;
      }
      done.fetch_add(1);
    });
    ASSERT_EQ(done.load(), n);
  }
}

TEST_P(OwnedRuns, RethrowTheFirstError) {
  EXPECT_THROW(parallel_for_owned(1000, 10,
                                  [](int64_t b, int64_t) {
                                    if (b == 500) throw std::runtime_error("boom");
                                  }),
               std::runtime_error);
  std::atomic<int64_t> sum = 0;
  parallel_for_owned(1000, 10, [&](int64_t b, int64_t e) { sum.fetch_add(e - b); });
  EXPECT_EQ(sum.load(), 1000);
}

INSTANTIATE_TEST_SUITE_P(Threads, OwnedRuns, ::testing::Values(2, 3, 5));

}  // namespace
}  // namespace mlxd
