// Real gRPC groups of 1 to 8 ranks (threads of this process, sockets on 127.0.0.1): every collective and
// point-to-point call against a reference computed locally, for every dtype and sizes from 0 elements up.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "collective_checks.h"
#include "comm_test_util.h"
#include "mlxd/core/ops.h"

namespace mlxd::comm {
namespace {

using test::run_ranks;

class world_sizes : public ::testing::TestWithParam<int> {};

TEST_P(world_sizes, collectives_match_the_reference_on_every_dtype) {
  run_ranks(GetParam(), [](group& g) { check_all_collectives(g, {0, 1, 7, 300}); });
}

// Small thresholds push every size through the ring with many pieces per segment.
TEST_P(world_sizes, ring_collectives_match_the_reference) {
  run_ranks(
      GetParam(),
      [](group& g) {
        check_all_collectives(g, {5, 97, 1000});
      },
      [](group_options& o) {
        o.small_all_reduce_bytes = 16;
        o.pipeline_bytes = 64;
        o.chunk_bytes = 40;  // several chunks per piece too
      });
}

INSTANTIATE_TEST_SUITE_P(comm, world_sizes, ::testing::Values(1, 2, 3, 4, 5, 7, 8));

TEST(grpc_group, point_to_point_keeps_dtype_shape_and_order) {
  run_ranks(3, [](group& g) {
    const int me = g.rank(), n = g.size();
    const int right = (me + 1) % n, left = (me + n - 1) % n;
    int round = 0;
    for (dtype t : all_dtypes) {
      for (const shape_t& shape : {shape_t{}, shape_t{0}, shape_t{3, 0, 2}, shape_t{1}, shape_t{4, 5, 3}}) {
        ++round;
        array x = seeded(shape, t, seed_of(me, round));
        g.send(x, right, 7);
        array got = g.recv(left, 7);
        expect_equal(got, seeded(shape, t, seed_of(left, round)), "p2p " + x.to_string());
      }
    }
    // Non-blocking: two tags posted out of order still match by tag, one tag keeps its order.
    auto r2 = g.irecv(left, 2);
    auto r1 = g.irecv(left, 1);
    auto r1b = g.irecv(left, 1);
    std::vector<request> sends;
    sends.push_back(g.isend(array::from(std::vector<int32_t>{me, 1}, {2}), right, 1));
    sends.push_back(g.isend(array::from(std::vector<int32_t>{me, 2}, {2}), right, 2));
    sends.push_back(g.isend(array::from(std::vector<int32_t>{me, 3}, {2}), right, 1));
    for (auto& s : sends) s.wait();
    EXPECT_EQ(r1.wait().to_vector<int32_t>(), (std::vector<int32_t>{left, 1}));
    EXPECT_EQ(r1b.wait().to_vector<int32_t>(), (std::vector<int32_t>{left, 3}));
    EXPECT_EQ(r2.wait().to_vector<int32_t>(), (std::vector<int32_t>{left, 2}));
    // A message to oneself.
    g.send(array::from({1.5f, 2.5f}, {2}), me, 9);
    EXPECT_EQ(g.recv(me, 9).to_vector<float>(), (std::vector<float>{1.5f, 2.5f}));
  });
}

TEST(grpc_group, non_contiguous_inputs) {
  run_ranks(3, [](group& g) {
    const int me = g.rank();
    array x = seeded({6, 4}, dtype::f32, seed_of(me, 1));
    array xt = transpose(x);  // [4, 6], strided
    ASSERT_FALSE(xt.is_contiguous());
    array sum = g.all_reduce(xt, reduce_op::sum);
    array want = transpose(reference_reduce({6, 4}, dtype::f32, reduce_op::sum, g.size(), 1));
    expect_equal(sum, contiguous(want), "transposed all_reduce");
    g.send(xt, (me + 1) % 3, 1);
    array got = g.recv((me + 2) % 3, 1);
    expect_equal(got, contiguous(transpose(seeded({6, 4}, dtype::f32, seed_of((me + 2) % 3, 1)))),
                 "transposed send");
    array bc = g.broadcast(slice(x, {0, 0}, {6, 4}, {2, 3}), 0);  // every other row, every third column
    expect_equal(bc, contiguous(slice(seeded({6, 4}, dtype::f32, seed_of(0, 1)), {0, 0}, {6, 4}, {2, 3})),
                 "strided broadcast");
  });
}

// Floats with many significant bits (sums depend on the order), cheap to make: a 32-bit LCG per rank.
array noisy(int64_t n, int rank) {
  array out = array::empty({n}, dtype::f32);
  uint32_t state = 12345u + 7919u * static_cast<uint32_t>(rank);
  float* p = out.mutable_data<float>();
  for (int64_t i = 0; i < n; ++i) {
    state = state * 1664525u + 1013904223u;
    p[i] = static_cast<float>(state >> 8) * (1.0f / 16777216.0f) - 0.5f;
  }
  return out;
}

// Tensors far above gRPC's 4 MB message limit travel in chunks; the ring results are the same bits on every
// rank and from run to run (floats that do not sum exactly, so the order matters).
TEST(grpc_group, large_tensors_and_bit_identical_results) {
  const int64_t n_elements = 6 << 20;  // 24 MB of f32
  run_ranks(3, [&](group& g) {
    array x = noisy(n_elements, g.rank());
    array a = g.all_reduce(x, reduce_op::sum);
    array b = g.all_reduce(x, reduce_op::sum);
    EXPECT_EQ(bytes_of(a), bytes_of(b));
    array everyone = g.all_gather(slice(a, {0}, {4096}));
    for (int r = 1; r < g.size(); ++r)
      EXPECT_EQ(0, std::memcmp(everyone.raw_data(), everyone.data<float>() + 4096 * r, 4096 * sizeof(float)));
    // Against a reference within float rounding.
    std::vector<double> want(static_cast<size_t>(n_elements), 0.0);
    for (int r = 0; r < g.size(); ++r) {
      const array v = noisy(n_elements, r);  // held: its buffer is reused as soon as it is released
      for (size_t i = 0; i < want.size(); ++i) want[i] += v.data<float>()[i];
    }
    const float* got = a.data<float>();
    for (size_t i = 0; i < want.size(); i += 997) ASSERT_NEAR(got[i], want[i], 1e-5) << i;
    // Point to point: 24 MB in one message.
    const int right = (g.rank() + 1) % 3, left = (g.rank() + 2) % 3;
    g.send(x, right, 3);
    array back = g.recv(left, 3);
    ASSERT_EQ(back.size(), n_elements);
    EXPECT_EQ(bytes_of(back), bytes_of(noisy(n_elements, left)));
  });
}

TEST(grpc_group, split_into_sub_groups) {
  run_ranks(5, [](group& g) {
    const int me = g.rank();
    auto sub = g.split(me % 2, -me);  // evens and odds, in reverse rank order
    ASSERT_NE(sub, nullptr);
    const int n_sub = me % 2 == 0 ? 3 : 2;
    EXPECT_EQ(sub->size(), n_sub);
    array s = sub->all_reduce(array::from(std::vector<int32_t>{me}, {1}), reduce_op::sum);
    EXPECT_EQ(s.item<int32_t>(), me % 2 == 0 ? 0 + 2 + 4 : 1 + 3);
    array order = sub->all_gather(array::from(std::vector<int32_t>{me}, {1}));
    std::vector<int32_t> want = me % 2 == 0 ? std::vector<int32_t>{4, 2, 0} : std::vector<int32_t>{3, 1};
    EXPECT_EQ(order.to_vector<int32_t>(), want);
    // The world still works, and messages of the sub-group and the world do not mix.
    EXPECT_EQ(g.all_reduce(array::from(std::vector<int32_t>{1}, {1}), reduce_op::sum).item<int32_t>(), 5);
    auto none = g.split(me == 0 ? -1 : 0, 0);
    EXPECT_EQ(none == nullptr, me == 0);
    if (none) {
      EXPECT_EQ(none->size(), 4);
    }
  });
}

// Rendezvous from an explicit peer list instead of a master.
TEST(grpc_group, explicit_peer_list) {
  std::vector<std::string> peers;
  for (int r = 0; r < 3; ++r) peers.push_back("127.0.0.1:" + std::to_string(test::free_port()));
  run_ranks(
      3,
      [](group& g) {
        EXPECT_EQ(
            g.all_reduce(array::from(std::vector<int64_t>{g.rank()}, {1}), reduce_op::sum).item<int64_t>(),
            3);
      },
      [&](group_options& o) {
        o.master_addr.clear();
        o.peers = peers;
      });
}

// Processes that form one group after another on one master port: a rank that leaves the first group early
// and joins the second while the master still holds the first (formed) waits for the second to form instead
// of failing with "the group is already formed". (comm.launch_8_ranks met this race.)
TEST(grpc_group, a_rank_joining_a_master_that_still_holds_the_previous_group_waits_for_the_next) {
  const int port = test::free_port();
  std::shared_ptr<group> first0;
  std::thread t0([&] { first0 = make_group("grpc", test::loopback_options(0, 2, port)); });
  std::shared_ptr<group> first1 = make_group("grpc", test::loopback_options(1, 2, port));
  t0.join();
  first1.reset();  // rank 1 is done with the first group; rank 0 is not yet
  std::shared_ptr<group> second1;
  std::exception_ptr error;
  std::thread joiner([&] {
    try {
      second1 = make_group("grpc", test::loopback_options(1, 2, port));
    } catch (...) {
      error = std::current_exception();
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the join meets the formed first group
  first0.reset();
  std::shared_ptr<group> second0;
  std::exception_ptr error0;
  try {
    second0 = make_group("grpc", test::loopback_options(0, 2, port));
  } catch (...) {
    error0 = std::current_exception();
  }
  joiner.join();
  if (error) std::rethrow_exception(error);
  if (error0) std::rethrow_exception(error0);
  ASSERT_TRUE(second1);
  // The second group works: a sum over both of its ranks.
  int64_t at1 = 0;
  std::thread other([&] {
    at1 = second1->all_reduce(array::from(std::vector<int64_t>{7}, {1}), reduce_op::sum).item<int64_t>();
  });
  EXPECT_EQ(second0->all_reduce(array::from(std::vector<int64_t>{5}, {1}), reduce_op::sum).item<int64_t>(),
            12);
  other.join();
  EXPECT_EQ(at1, 12);
}

TEST(grpc_group, misuse_is_refused_with_clear_errors) {
  run_ranks(2, [](group& g) {
    EXPECT_THROW(g.send(array(1.0f), 2, 0), std::invalid_argument);
    EXPECT_THROW(g.recv(-1, 0), std::invalid_argument);
    EXPECT_THROW(g.send(array(1.0f), 1, uint64_t{1} << 62), std::invalid_argument);
    EXPECT_THROW(g.all_reduce(array::from(std::vector<int32_t>{1}, {1}), reduce_op::mean),
                 std::invalid_argument);
    EXPECT_THROW(g.reduce_scatter(array::from({1.0f, 2.0f, 3.0f}, {3}), reduce_op::sum),
                 std::invalid_argument);
    EXPECT_THROW(g.broadcast(array(1.0f), 5), std::invalid_argument);
    // Block-quantized arrays are refused before anything is sent, so the peer never sees a malformed chunk.
    const array quantized = astype(array::from(std::vector<float>(32, 0.5f), {1, 32}), dtype::q8_0);
    EXPECT_THROW(g.send(quantized, 1 - g.rank(), 0), std::invalid_argument);
    EXPECT_THROW(g.all_gather(quantized), std::invalid_argument);
    g.barrier();
  });
}

// all_gather above small_all_reduce_bytes per rank is a pipelined ring: 4 MB per rank of floats with every
// bit significant, on 3 and 4 ranks, equal bit for bit to each rank's input.
TEST(grpc_group, ring_all_gather_of_large_parts) {
  for (int world : {3, 4}) {
    run_ranks(
        world,
        [](group& g) {
          const int64_t n = 1 << 20;
          array parts = g.all_gather(reshape(noisy(n, g.rank()), {256, n / 256}));
          ASSERT_EQ(parts.shape(), (shape_t{g.size(), 256, n / 256}));
          for (int r = 0; r < g.size(); ++r) {
            const array want = noisy(n, r);
            EXPECT_EQ(0, std::memcmp(parts.data<float>() + r * n, want.data<float>(), n * sizeof(float)))
                << "part of rank " << r;
          }
        },
        [](group_options& o) { o.pipeline_bytes = 300 << 10; });  // pieces that do not divide a part
  }
}

}  // namespace
}  // namespace mlxd::comm
