// Ranks that call a collective with different arguments (a user bug): every rank fails within a second with
// an error naming what differs, nothing waits for the timeout, and the group goes on working afterwards.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <string>

#include "comm_test_util.h"
#include "mlxd/core/ops.h"

namespace mlxd::comm {
namespace {

using clock_type = std::chrono::steady_clock;
using call = std::function<void(group&)>;

// The algorithms a 999- or 1000-float tensor takes: both direct, both ring/chain, or one of each (999 floats
// are 3996 bytes, 1000 are 4000).
enum class regime { direct, ring, mixed };

void use_regime(group_options& o, regime r) {
  o.timeout = std::chrono::seconds(20);  // a hang shows as a failure of the time bound, not of the test run
  o.small_all_reduce_bytes = r == regime::direct ? 64 << 10 : r == regime::ring ? 1024 : 3998;
  o.pipeline_bytes = 1000;  // several pieces per ring segment
}

// Runs `bad` on every rank of a `world` group and expects std::invalid_argument within a second whose text
// holds every one of `words`; then checks that correct collectives still work on the group.
void expect_refused_everywhere(int world, regime rg, const call& bad, const std::vector<std::string>& words) {
  test::run_ranks(
      world,
      [&](group& g) {
        g.barrier();  // start together, so the time bound measures the call alone
        const auto t0 = clock_type::now();
        try {
          bad(g);
          ADD_FAILURE() << "rank " << g.rank() << ": the mismatched call succeeded";
        } catch (const std::invalid_argument& e) {
          const std::string what = e.what();
          for (const auto& w : words)
            EXPECT_NE(what.find(w), std::string::npos)
                << "rank " << g.rank() << " missing '" << w << "': " << what;
        }
        const double s = std::chrono::duration<double>(clock_type::now() - t0).count();
        EXPECT_LT(s, 1.0) << "rank " << g.rank() << " took " << s << " s to fail";
        // The group is usable: a small and a ring-sized all_reduce, an all_gather and a broadcast after it.
        for (int64_t n : {int64_t{3}, int64_t{5000}}) {
          array x = full({n}, static_cast<float>(g.rank() + 1), dtype::f32);
          array sum = g.all_reduce(x, reduce_op::sum);
          const float want = static_cast<float>(g.size() * (g.size() + 1) / 2);
          for (float v : sum.to_vector<float>()) ASSERT_EQ(v, want);
        }
        array parts = g.all_gather(array::from(std::vector<int64_t>{g.rank()}, {1}));
        for (int r = 0; r < g.size(); ++r) EXPECT_EQ(parts.to_vector<int64_t>()[static_cast<size_t>(r)], r);
        array b =
            g.broadcast(g.rank() == 1 ? full({2000}, 7.0f, dtype::f32) : array::empty({0}, dtype::u8), 1);
        EXPECT_EQ(b.shape(), shape_t{2000});
        EXPECT_EQ(b.to_vector<float>()[1999], 7.0f);
      },
      [&](group_options& o) { use_regime(o, rg); });
}

// 999 elements on the last rank, 1000 on the others.
int64_t count_for(const group& g) {
  return g.rank() == g.size() - 1 ? 999 : 1000;
}

struct mismatch_case {
  int world;
  regime rg;
};

class sizes_differ : public ::testing::TestWithParam<mismatch_case> {};

TEST_P(sizes_differ, all_reduce) {
  expect_refused_everywhere(
      GetParam().world, GetParam().rg,
      [](group& g) { g.all_reduce(full({count_for(g)}, 1.0f, dtype::f32), reduce_op::sum); },
      {"[all_reduce]", "has 999 f32 elements", "has 1000 f32 elements"});
}

TEST_P(sizes_differ, all_gather) {
  expect_refused_everywhere(GetParam().world, GetParam().rg,
                            [](group& g) { g.all_gather(full({count_for(g)}, 1.0f, dtype::f32)); },
                            {"[all_gather]", "has 999 f32 elements", "has 1000 f32 elements"});
}

TEST_P(sizes_differ, reduce_scatter) {
  // 999 and 1000 rows: one of them is not a multiple of the group size either; the mismatch is named first.
  expect_refused_everywhere(
      GetParam().world, GetParam().rg,
      [](group& g) {
        g.reduce_scatter(full({count_for(g), 1}, 1.0f, dtype::f32), reduce_op::max);
      },
      {"[reduce_scatter]", "has 999 f32 elements [999,1]", "has 1000 f32 elements [1000,1]"});
}

TEST_P(sizes_differ, broadcast) {
  // Rank 0 is the root with 1000; a non-root rank's tensor must be empty or like the root's.
  expect_refused_everywhere(GetParam().world, GetParam().rg,
                            [](group& g) { g.broadcast(full({count_for(g)}, 1.0f, dtype::f32), 0); },
                            {"[broadcast]", "has 999 f32 elements", "the root rank 0 has 1000 f32 elements"});
}

TEST_P(sizes_differ, dtype) {
  expect_refused_everywhere(GetParam().world, GetParam().rg,
                            [](group& g) {
                              g.all_reduce(full({1000}, 1.0f, g.rank() == 1 ? dtype::i32 : dtype::f32),
                                           reduce_op::sum);
                            },
                            {"[all_reduce]", "rank 1 has 1000 i32 elements", "rank 0 has 1000 f32 elements"});
}

std::string case_name(const ::testing::TestParamInfo<mismatch_case>& p) {
  static const char* const regimes[] = {"direct", "ring", "mixed"};
  return std::to_string(p.param.world) + "_ranks_" + regimes[static_cast<int>(p.param.rg)];
}

INSTANTIATE_TEST_SUITE_P(comm, sizes_differ,
                         ::testing::Values(mismatch_case{2, regime::direct}, mismatch_case{3, regime::direct},
                                           mismatch_case{2, regime::ring}, mismatch_case{3, regime::ring},
                                           mismatch_case{3, regime::mixed}),
                         case_name);

TEST(collective_mismatch, different_reductions_roots_and_collectives) {
  expect_refused_everywhere(3, regime::direct,
                            [](group& g) {
                              g.all_reduce(full({8}, 1.0f, dtype::f32),
                                           g.rank() == 2 ? reduce_op::max : reduce_op::sum);
                            },
                            {"rank 2 reduces with max, rank 0 with sum"});
  expect_refused_everywhere(2, regime::ring,
                            [](group& g) { g.broadcast(full({1000}, 1.0f, dtype::f32), g.rank()); },
                            {"rank 1 broadcasts from root 1, rank 0 from root 0"});
  expect_refused_everywhere(3, regime::direct,
                            [](group& g) {
                              array x = full({6}, 1.0f, dtype::f32);
                              if (g.rank() == 1)
                                g.all_gather(x);
                              else
                                g.all_reduce(x, reduce_op::sum);
                            },
                            {"rank 1 calls all_gather, rank 0 calls all_reduce"});
}

// Same element count, different shapes: only the descriptors can tell.
TEST(collective_mismatch, same_size_different_shape) {
  expect_refused_everywhere(
      2, regime::ring,
      [](group& g) {
        g.all_gather(array::empty(g.rank() == 0 ? shape_t{20, 30} : shape_t{30, 20}, dtype::f32));
      },
      {"rank 1 has 600 f32 elements [30,20], rank 0 has 600 f32 elements [20,30]"});
}

// A rank whose own arguments are invalid (here a reduce_scatter that does not divide) still tells the others,
// so a refusal on one rank is a refusal on all instead of a wait for the timeout.
TEST(collective_mismatch, a_local_refusal_is_shared) {
  expect_refused_everywhere(
      2, regime::direct, [](group& g) { g.reduce_scatter(full({3}, 1.0f, dtype::f32), reduce_op::sum); },
      {"[reduce_scatter] the leading dimension of f32[3] must be a multiple of the group size 2"});
  expect_refused_everywhere(
      2, regime::direct,
      [](group& g) {
        const array q = astype(array::from(std::vector<float>(32, 0.5f), {1, 32}), dtype::q8_0);
        g.broadcast(g.rank() == 0 ? q : array::empty({0}, dtype::u8), 0);
      },
      {"q8_0"});
}

}  // namespace
}  // namespace mlxd::comm
