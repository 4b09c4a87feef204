// The all-reducer's bucket plan, its argument checks, and sums over a size-1 group and over 2 and 3 gRPC
// ranks in threads of this process (the multi-process runs are in grad_allreduce_worker.cpp).
#include "mlxd/train/grad_allreduce.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <random>

#include "comm_test_util.h"
#include "grad_lists.h"
#include "mlxd/comm/registry.h"

namespace mlxd::train {
namespace {

std::vector<array> sized(const std::vector<int64_t>& sizes) {
  std::vector<array> out;
  for (int64_t n : sizes) out.push_back(test::seeded_grad({n}, static_cast<uint64_t>(n), true));
  return out;
}

std::vector<std::pair<int64_t, int64_t>> ranges(const std::vector<grad_bucket>& b) {
  std::vector<std::pair<int64_t, int64_t>> out;
  for (const auto& x : b) out.emplace_back(x.begin, x.end);
  return out;
}

TEST(grad_buckets, pack_small_gradients_and_give_big_ones_their_own) {
  using v = std::vector<std::pair<int64_t, int64_t>>;
  // 1000 floats a bucket: 1000 and 2500 are big, 3 and 1 small; the empty one belongs nowhere.
  EXPECT_EQ(ranges(plan_grad_buckets(sized({3, 1000, 0, 2500, 1}), 4000)),
            (v{{0, 3}, {3, 1003}, {1003, 3503}, {3503, 3504}}));
  EXPECT_EQ(ranges(plan_grad_buckets(sized({400, 400, 400, 200, 999}), 4000)),
            (v{{0, 800}, {800, 1400}, {1400, 2399}}));
  EXPECT_TRUE(plan_grad_buckets({}, 4000).empty());
  EXPECT_TRUE(plan_grad_buckets(sized({0, 0}), 4000).empty());
  EXPECT_EQ(ranges(plan_grad_buckets(sized({5, 2}), 4)), (v{{0, 5}, {5, 7}}));  // one float a bucket
  EXPECT_EQ(ranges(plan_grad_buckets(sized({1, 1}), 11)), (v{{0, 2}}));         // rounds down to 2 floats
}

TEST(grad_allreducer, rejects_bad_arguments) {
  EXPECT_THROW(grad_allreducer(nullptr), std::invalid_argument);
  EXPECT_THROW(grad_allreducer(comm::make_local_group(), 3), std::invalid_argument);
  grad_allreducer ar(comm::make_local_group());
  try {
    ar.sum({array::from({1.0f}, {1}), array::from(std::vector<int32_t>{1}, {1})});
    FAIL() << "an i32 gradient was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("gradient 1 is i32[1]"), std::string::npos) << e.what();
  }
}

TEST(grad_allreducer, size_one_group_returns_fresh_copies) {
  grad_allreducer ar(comm::make_local_group(), 256);
  const auto grads = test::grad_list(0, false, 300);
  const auto sums = ar.sum(grads);
  ASSERT_EQ(sums.size(), grads.size());
  for (size_t i = 0; i < grads.size(); ++i) {
    EXPECT_EQ(sums[i].shape(), grads[i].shape()) << i;
    EXPECT_TRUE(sums[i].is_contiguous());
    EXPECT_FALSE(sums[i].shares_storage(grads[i])) << i;
    EXPECT_EQ(sums[i].to_vector<float>(), grads[i].to_vector<float>()) << i;
  }
  EXPECT_TRUE(ar.sum({}).empty());
  EXPECT_EQ(ar.sum_scalars({1.5, -2.0, 1e300}), (std::vector<double>{1.5, -2.0, 1e300}));
  EXPECT_EQ(ar.rank(), 0);
  EXPECT_EQ(ar.size(), 1);
}

// Every rank sums its own seeded list; the result must equal the reference added here in rank order (exact
// inputs, so the group's order cannot matter) for every bucket size, including buckets smaller than
// one tensor and one bucket for all, over both of the group's all-reduce algorithms.
void check_exact_sums(int world) {
  const int64_t big = 3000;
  const auto want = test::reference_sums(world, true, big);
  comm::test::run_ranks(
      world,
      [&](comm::group& g) {
        for (size_t bucket_bytes : {size_t{1000}, size_t{4096}, size_t{8} << 20}) {
          grad_allreducer ar(std::shared_ptr<comm::group>(&g, [](comm::group*) {}), bucket_bytes);
          const auto sums = ar.sum(test::grad_list(g.rank(), true, big));
          ASSERT_EQ(sums.size(), want.size());
          for (size_t i = 0; i < sums.size(); ++i)
            ASSERT_EQ(sums[i].to_vector<float>(), want[i]) << "rank " << g.rank() << " tensor " << i;
          EXPECT_GT(ar.comm_seconds(), 0.0);
          const auto s = ar.sum_scalars({1.0 + g.rank(), g.rank() == 1 ? 1.0 : 0.0, 1e15});
          EXPECT_EQ(s, (std::vector<double>{world * (world + 1) / 2.0, 1.0, world * 1e15}));
        }
      },
      [](comm::group_options& o) {
        o.small_all_reduce_bytes = 2048;
      });  // 1000-byte buckets direct, others ring
}

TEST(grad_allreducer, two_ranks_in_threads_sum_exactly) {
  check_exact_sums(2);
}
TEST(grad_allreducer, three_ranks_in_threads_sum_exactly) {
  check_exact_sums(3);
}

TEST(overlapped_grad_sum, rejects_misuse) {
  grad_allreducer ar(comm::make_local_group(), 4);  // one float a bucket: each gradient travels alone
  overlapped_grad_sum s(ar, {{3}, {0}, {2, 2}});
  EXPECT_THROW(s.add(3, array::from({1.0f}, {1})), std::invalid_argument);
  EXPECT_THROW(s.add(2, array::from({1.0f, 2.0f}, {2})), std::invalid_argument);
  EXPECT_THROW(s.add(2, array::from(std::vector<int32_t>{1, 2, 3, 4}, {2, 2})), std::invalid_argument);
  s.add(2, array::from({1.0f, 2.0f, 3.0f, 4.0f}, {2, 2}));  // the last bucket: it starts at once
  EXPECT_THROW(s.add(2, array::from({1.0f, 2.0f, 3.0f, 4.0f}, {2, 2})), std::invalid_argument);
  s.add(1, array::empty({0}, dtype::f32));
  try {
    s.finish();
    FAIL() << "finished with a gradient missing";
  } catch (const std::logic_error& e) {
    EXPECT_NE(std::string(e.what()).find("gradient 0 was never added"), std::string::npos) << e.what();
  }
  // Destroyed with one bucket started and one not: it returns, without waiting for the missing gradient.
}

// Gradients arriving in a different order on each rank still give sum()'s bytes on every rank.
void check_overlapped_equals_sum(int world) {
  comm::test::run_ranks(world, [&](comm::group& g) {
    for (size_t bucket_bytes : {size_t{1000}, size_t{4096}, size_t{8} << 20}) {
      grad_allreducer ar(std::shared_ptr<comm::group>(&g, [](comm::group*) {}), bucket_bytes);
      const auto grads = test::grad_list(g.rank(), false, 3000);
      const auto want = ar.sum(grads);
      std::vector<shape_t> shapes;
      std::vector<size_t> order;
      for (size_t i = 0; i < grads.size(); ++i) {
        shapes.push_back(grads[i].shape());
        order.push_back(i);
      }
      std::shuffle(order.begin(), order.end(), std::mt19937(static_cast<unsigned>(g.rank() + 11)));
      overlapped_grad_sum s(ar, shapes);
      for (size_t i : order) s.add(i, grads[i]);
      const auto got = s.finish();
      ASSERT_EQ(got.size(), want.size());
      for (size_t i = 0; i < got.size(); ++i) {
        ASSERT_EQ(got[i].shape(), want[i].shape()) << i;
        ASSERT_EQ(std::memcmp(got[i].data<float>(), want[i].data<float>(), got[i].nbytes()), 0)
            << "rank " << g.rank() << " tensor " << i;
      }
    }
  });
}

TEST(overlapped_grad_sum, two_ranks_in_threads_match_sum_in_any_arrival_order) {
  check_overlapped_equals_sum(2);
}
TEST(overlapped_grad_sum, three_ranks_in_threads_match_sum_in_any_arrival_order) {
  check_overlapped_equals_sum(3);
}

}  // namespace
}  // namespace mlxd::train
