// One rank of the all-reducer's multi-process tests, started by `mlxd launch -n N`.
//   grad_allreduce_worker [gtest flags]   sums checked against references computed here
//   grad_allreduce_worker lose_rank_1     rank 1 leaves after one sum; the others print "lost in time after N
//   ms: <error>"
//                                         and exit 0 when a sum fails within 5 s (1 otherwise)
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "grad_lists.h"
#include "mlxd/comm/registry.h"
#include "mlxd/comm/rendezvous.h"
#include "mlxd/core/autograd.h"
#include "mlxd/core/ops.h"
#include "mlxd/train/grad_accumulator.h"
#include "mlxd/train/grad_allreduce.h"

namespace mlxd::train {
namespace {

std::shared_ptr<comm::group> env_group() {
  static std::shared_ptr<comm::group> g = [] {
    auto o = comm::options_from_env();
    if (!o) throw std::runtime_error("grad_allreduce_worker: MLXD_RANK and MLXD_WORLD_SIZE are not set");
    return comm::make_group("grpc", *o);
  }();
  return g;
}

std::vector<uint8_t> concat_bytes(const std::vector<array>& xs) {
  std::vector<uint8_t> out;
  for (const auto& x : xs) {
    const auto* p = x.data<uint8_t>();
    out.insert(out.end(), p, p + x.nbytes());
  }
  return out;
}

TEST(grad_allreduce_ranks, exact_inputs_equal_the_reference_bit_for_bit) {
  grad_allreducer ar(env_group(), 4096);  // 1024 floats: 5000 and 1001 alone, the small ones packed
  const auto want = test::reference_sums(ar.size(), true, 5000);
  const auto sums = ar.sum(test::grad_list(ar.rank(), true, 5000));
  ASSERT_EQ(sums.size(), want.size());
  for (size_t i = 0; i < sums.size(); ++i) EXPECT_EQ(sums[i].to_vector<float>(), want[i]) << "tensor " << i;
}

// Full-precision inputs: close to the reference, and the same bytes on every rank and on a second call.
// Default 8 MB buckets: the 3M-element (12 MB) tensor alone over the ring, the small ones before and after it
// in two more buckets.
TEST(grad_allreduce_ranks, float_sums_are_bit_identical_on_every_rank) {
  auto g = env_group();
  grad_allreducer ar(g);
  const int64_t big = 3 << 20;
  const auto want = test::reference_sums(ar.size(), false, big);
  const auto grads = test::grad_list(ar.rank(), false, big);
  const auto sums = ar.sum(grads);
  ASSERT_EQ(sums.size(), want.size());
  for (size_t i = 0; i < sums.size(); ++i) {
    const auto got = sums[i].to_vector<float>();
    ASSERT_EQ(got.size(), want[i].size());
    for (size_t j = 0; j < got.size(); ++j)
      ASSERT_NEAR(got[j], want[i][j], 1e-5f * (1.0f + std::abs(want[i][j]))) << "tensor " << i << " at " << j;
  }
  const auto mine = concat_bytes(sums);
  EXPECT_EQ(concat_bytes(ar.sum(grads)), mine) << "a second call differs";
  const array all = g->all_gather(array::from(mine, {static_cast<int64_t>(mine.size())}, dtype::u8));
  for (int r = 0; r < ar.size(); ++r)
    EXPECT_EQ(std::memcmp(all.data<uint8_t>() + r * mine.size(), mine.data(), mine.size()), 0)
        << "rank " << r << " differs from rank " << ar.rank();
  EXPECT_GT(ar.comm_seconds(), 0.0);
}

TEST(grad_allreduce_ranks, scalars_and_empty_lists) {
  grad_allreducer ar(env_group());
  const int n = ar.size(), me = ar.rank();
  const auto s = ar.sum_scalars({0.25 * (me + 1), 1e15 + me, me == n - 1 ? 1.0 : 0.0});
  EXPECT_EQ(s, (std::vector<double>{0.25 * n * (n + 1) / 2, n * 1e15 + n * (n - 1) / 2, 1.0}));
  EXPECT_TRUE(ar.sum({}).empty());
  EXPECT_TRUE(ar.sum_scalars({}).empty());
  const auto z = ar.sum({array::empty({0, 4}, dtype::f32)});
  ASSERT_EQ(z.size(), 1u);
  EXPECT_EQ(z[0].shape(), (shape_t{0, 4}));
}

// A two-layer network's summed loss on this rank's micro-batch `micro`; p[5] is unused (zero gradient).
loss_fn network_loss(int rank, int micro) {
  const array x = test::seeded_grad({8, 16}, 1000 + 10 * static_cast<uint64_t>(rank) + micro, false);
  return [x](const std::vector<array>& p) {
    const array h = tanh(add(matmul(x, p[0]), p[1]));
    const array y = add(matmul(h, p[2]), p[3]);
    return add(sum(multiply(y, y)), sum(multiply(p[4], p[4])));
  };
}

// The trainer's data-parallel step both ways, with 1 and 3 micro-batches: accumulate, then sum() after the
// backward pass; or sum bucket by bucket from value_and_grad's callback on the last micro-batch. The same
// bytes.
TEST(grad_allreduce_ranks, overlapped_with_the_backward_pass_is_bit_identical) {
  grad_allreducer ar(env_group(), 256);  // 64 floats a bucket: several buckets, some packed
  std::vector<array> params;
  std::vector<shape_t> shapes = {{16, 32}, {32}, {32, 4}, {4}, {300}, {7}};
  for (size_t i = 0; i < shapes.size(); ++i) params.push_back(test::seeded_grad(shapes[i], 50 + i, false));
  for (int micro_batches : {1, 3}) {
    grad_accumulator plain;
    for (int m = 0; m < micro_batches; ++m)
      plain.add(value_and_grad(network_loss(ar.rank(), m), params).second);
    const auto want = ar.sum(plain.take(1.0));

    grad_accumulator earlier_batches;
    for (int m = 0; m + 1 < micro_batches; ++m)
      earlier_batches.add(value_and_grad(network_loss(ar.rank(), m), params).second);
    const std::vector<array> earlier = micro_batches > 1 ? earlier_batches.take(1.0) : std::vector<array>{};
    overlapped_grad_sum overlapped(ar, shapes);
    int reported = 0;
    value_and_grad(network_loss(ar.rank(), micro_batches - 1), params, [&](size_t i, const array& g) {
      ++reported;
      overlapped.add(i, earlier.empty() ? g : add(earlier[i], g));
    });
    EXPECT_EQ(reported, static_cast<int>(params.size()));
    EXPECT_EQ(concat_bytes(overlapped.finish()), concat_bytes(want)) << micro_batches << " micro-batches";
  }
}

int lose_rank_1() {
  grad_allreducer ar(env_group(), 64 << 10);
  const auto grads = test::grad_list(ar.rank(), false, 1 << 20);
  ar.sum(grads);
  if (ar.rank() == 1) std::_Exit(0);  // gone without a goodbye, as a crashed rank would be
  const auto start = std::chrono::steady_clock::now();
  const auto ms = [&] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start)
        .count();
  };
  try {
    while (ms() < 20000) ar.sum(grads);
    std::printf("no error after %lld ms\n", static_cast<long long>(ms()));
    return 1;
  } catch (const comm::comm_error& e) {
    const bool in_time = ms() < 5000;  // the deadline the test holds the comm layer to
    std::printf("lost %s after %lld ms: %s\n", in_time ? "in time" : "too late", static_cast<long long>(ms()),
                e.what());
    std::fflush(stdout);
    return in_time ? 0 : 1;
  }
}

}  // namespace
}  // namespace mlxd::train

int main(int argc, char** argv) {
  try {
    if (argc >= 2 && std::strcmp(argv[1], "lose_rank_1") == 0) return mlxd::train::lose_rank_1();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "grad_allreduce_worker: %s\n", e.what());
    return 1;
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
