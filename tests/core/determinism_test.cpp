// Deterministic ops give the same bits for every thread count.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <thread>

#include "mlxd/core/autograd.h"
#include "mlxd/core/thread_pool.h"
#include "test_util.h"

namespace mlxd {
namespace {

class ThreadCount {
 public:
  explicit ThreadCount(int n) : saved_(num_threads()) { set_num_threads(n); }
  ~ThreadCount() { set_num_threads(saved_); }

 private:
  int saved_;
};

void expect_same_bits(const std::function<array()>& op) {
  array one;
  {
    ThreadCount t(1);
    one = op();
  }
  for (int n : {2, 3, 4}) {
    ThreadCount t(n);
    EXPECT_TRUE(array_equal(op(), one)) << n << " threads";
  }
}

TEST(Determinism, OpsGiveTheSameBitsForAnyThreadCount) {
  const array x = test::randn(1, {64, 4096});
  const array w = test::randn(2, {4096});
  expect_same_bits([&] { return exp(x); });
  expect_same_bits([&] { return silu(x) * x + x; });
  expect_same_bits([&] { return sum(x); });
  expect_same_bits([&] { return sum(x, {0}); });
  expect_same_bits([&] { return logsumexp(x, {1}); });
  expect_same_bits([&] { return softmax(x); });
  expect_same_bits([&] { return rms_norm(x, w, 1e-5f); });
  expect_same_bits([&] { return matmul(x, transpose(test::randn(3, {512, 4096}))); });
  expect_same_bits([&] {
    return matmul(slice_axis(x, 0, 0, 1), transpose(test::randn(4, {700, 4096}, dtype::f16)));
  });
  // Pieces of a large product (src/core/sgemm.h) on both sides of the split rule: rows and columns.
  expect_same_bits([&] { return matmul(test::randn(5, {700, 300}), test::randn(6, {300, 260})); });
  expect_same_bits([&] { return matmul(test::randn(5, {40, 300}), test::randn(6, {300, 900})); });
  expect_same_bits([&] { return matmul(test::randn(5, {8, 64}), test::randn(6, {64, 9000})); });  // 16 pieces
  // Attention runs its (row, head) blocks in parallel; the backward's kv-head blocks sum query heads in
  // order.
  const array q = test::randn(7, {2, 4, 150, 16}), k = test::randn(8, {2, 2, 150, 16}),
              v = test::randn(9, {2, 2, 150, 16});
  expect_same_bits([&] { return causal_attention(q, k, v, array(), 0.25f); });
  for (int i = 0; i < 3; ++i) {
    expect_same_bits([&] {
      return grad(
          [&](const std::vector<array>& a) {
            return sum(causal_attention(a[0], a[1], a[2], array(), 0.25f) * a[0]);
          },
          {q, k, v})[i];
    });
  }
  expect_same_bits([&] { return random::normal({9}, {100000}); });
  expect_same_bits([&] { return cumsum(x, 1); });
  expect_same_bits(
      [&] { return grad([&](const std::vector<array>& a) { return sum(softmax(a[0]) * x); }, {x})[0]; });
}

TEST(Determinism, ParallelForCoversEveryIndexOnceAndRethrows) {
  ThreadCount t(3);
  std::vector<int> hits(100003, 0);
  parallel_for(static_cast<int64_t>(hits.size()), 1000, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) ++hits[i];
  });
  for (int h : hits) ASSERT_EQ(h, 1);
  EXPECT_THROW(parallel_for(10000, 10,
                            [](int64_t b, int64_t) {
                              if (b == 5000) throw std::runtime_error("boom");
                            }),
               std::runtime_error);
  EXPECT_THROW(set_num_threads(0), std::invalid_argument);
}

// Resizing the pool between jobs must not let new workers replay the previous job (a past hang under TSan).
TEST(Determinism, PoolResizesBetweenJobsWithoutLosingOrRepeatingWork) {
  const int saved = num_threads();
  for (int round = 0; round < 300; ++round) {
    set_num_threads(2 + round % 3);
    std::vector<std::atomic<int>> hits(4096);
    parallel_for(4096, 64, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) hits[i].fetch_add(1);
    });
    for (const auto& h : hits) ASSERT_EQ(h.load(), 1) << "round " << round;
  }
  set_num_threads(saved);
}

// A caller no longer waits for a sleeping worker (it closes the job once it has drained it), so a worker may
// wake after its job is over, or into a later one: every chunk must still run exactly once.
TEST(Determinism, WorkersThatWakeLateNeitherRepeatNorLoseChunks) {
  ThreadCount t(3);
  for (int job = 0; job < 600; ++job) {
    // Pauses longer than the workers' polling put them to sleep before some jobs.
    if (job % 3 == 0) std::this_thread::sleep_for(std::chrono::microseconds(50 * (job % 7)));
    const int64_t n = 1 + job % 37;
    std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
    parallel_for(n, 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)].fetch_add(1);
    });
    for (const auto& h : hits) ASSERT_EQ(h.load(), 1) << "job " << job;
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_THROW(parallel_for(8, 1,
                            [](int64_t b, int64_t) {
                              if (b == 7) throw std::runtime_error("late");
                            }),
               std::runtime_error);
}

}  // namespace
}  // namespace mlxd
