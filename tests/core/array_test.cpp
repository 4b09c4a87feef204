// Views share storage, copies happen only when needed, and layouts address the right elements.
#include <gtest/gtest.h>
#include <sys/mman.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "mlxd/core/allocator.h"
#include "test_util.h"

namespace mlxd {
namespace {

std::vector<float> iota(int n) {
  std::vector<float> v(n);
  for (int i = 0; i < n; ++i) v[i] = static_cast<float>(i);
  return v;
}

TEST(Array, ScalarAndFactories) {
  EXPECT_EQ(array(3.5f).item<float>(), 3.5f);
  EXPECT_EQ(array(3.5f).ndim(), 0);
  EXPECT_EQ(full({2, 2}, 7, dtype::i32).to_vector<int32_t>(), (std::vector<int32_t>{7, 7, 7, 7}));
  EXPECT_EQ(arange(2, 11, 3).to_vector<int64_t>(), (std::vector<int64_t>{2, 5, 8}));
  EXPECT_EQ(arange(5, 0, -2).to_vector<int64_t>(), (std::vector<int64_t>{5, 3, 1}));
  EXPECT_EQ(zeros({0, 3}).size(), 0);
  EXPECT_THROW(array::from({1.0f, 2.0f}, {3}), std::invalid_argument);
  EXPECT_THROW(array::empty({-1}, dtype::f32), std::invalid_argument);
}

TEST(Array, TransposeAndSliceAreViews) {
  const array a = array::from(iota(24), {2, 3, 4});
  const array t = transpose(a, {2, 0, 1});
  EXPECT_TRUE(t.shares_storage(a));
  EXPECT_FALSE(t.is_contiguous());
  EXPECT_EQ(t.shape(), (shape_t{4, 2, 3}));
  EXPECT_EQ(t.to_vector<float>()[1], 4.0f);  // t[0,0,1] = a[0,1,0]
  const array c = contiguous(t);
  EXPECT_FALSE(c.shares_storage(a));
  EXPECT_TRUE(c.is_contiguous());
  EXPECT_TRUE(array_equal(c, t));
  EXPECT_TRUE(contiguous(a).shares_storage(a));  // already contiguous: no copy

  const array s = slice(a, {1, 0, 1}, {2, 3, 4}, {1, 2, 2});  // a[1:2, 0:3:2, 1:4:2]
  EXPECT_TRUE(s.shares_storage(a));
  EXPECT_EQ(s.shape(), (shape_t{1, 2, 2}));
  EXPECT_EQ(s.to_vector<float>(), (std::vector<float>{13, 15, 21, 23}));
  const array neg = slice_axis(a, 2, -3, -1);
  EXPECT_EQ(neg.to_vector<float>()[0], 1.0f);
  EXPECT_EQ(slice_axis(a, 1, 5, 9).shape(), (shape_t{2, 0, 4}));  // clamped, empty
}

TEST(Array, ReshapeViewsWhenStridesAllowAndCopiesOtherwise) {
  const array a = array::from(iota(24), {2, 3, 4});
  const array r = reshape(a, {6, -1});
  EXPECT_TRUE(r.shares_storage(a));
  EXPECT_EQ(r.shape(), (shape_t{6, 4}));
  // Splitting the last axis of a transposed view keeps it a view.
  const array t = transpose(a, {1, 0, 2});  // [3, 2, 4]
  const array split_view = reshape(t, {3, 2, 2, 2});
  EXPECT_TRUE(split_view.shares_storage(a));
  EXPECT_TRUE(array_equal(split_view, reshape(contiguous(t), {3, 2, 2, 2})));
  // Merging axes that are not adjacent in memory needs a copy, and must still be right.
  const array merged = reshape(t, {6, 4});
  EXPECT_FALSE(merged.shares_storage(a));
  EXPECT_TRUE(array_equal(merged, reshape(contiguous(t), {6, 4})));
  EXPECT_THROW(reshape(a, {5, 5}), std::invalid_argument);
  EXPECT_THROW(reshape(a, {-1, -1}), std::invalid_argument);
}

TEST(Array, BroadcastExpandSqueeze) {
  const array a = array::from({1, 2, 3}, {3, 1});
  const array b = broadcast_to(a, {2, 3, 4});
  EXPECT_TRUE(b.shares_storage(a));
  EXPECT_EQ(b.strides(), (shape_t{0, 1, 0}));
  EXPECT_EQ(b.to_vector<float>()[5], 2.0f);
  EXPECT_THROW(broadcast_to(a, {2, 4}), std::invalid_argument);
  EXPECT_EQ(expand_dims(a, 0).shape(), (shape_t{1, 3, 1}));
  EXPECT_EQ(expand_dims(a, -1).shape(), (shape_t{3, 1, 1}));
  EXPECT_EQ(squeeze(a).shape(), (shape_t{3}));
  EXPECT_THROW(squeeze(a, {0}), std::invalid_argument);
  EXPECT_EQ(broadcast_shapes({5, 1, 3}, {4, 1}), (shape_t{5, 4, 3}));
}

TEST(Array, ConcatenateStackSplit) {
  const array a = array::from(iota(6), {2, 3});
  const array b = array::from({10, 11}, {2, 1});
  const array c = concatenate({a, b}, 1);
  EXPECT_EQ(c.to_vector<float>(), (std::vector<float>{0, 1, 2, 10, 3, 4, 5, 11}));
  EXPECT_THROW(concatenate({a, b}, 0), std::invalid_argument);
  const array s = stack({a, a}, 1);
  EXPECT_EQ(s.shape(), (shape_t{2, 2, 3}));
  EXPECT_EQ(s.to_vector<float>()[3], 0.0f);
  const auto parts = split(c, shape_t{1, 3}, 1);
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_EQ(parts[1].shape(), (shape_t{2, 2}));
  EXPECT_TRUE(array_equal(concatenate(parts, 1), c));
  EXPECT_THROW(split(c, 3, 1), std::invalid_argument);
  EXPECT_EQ(split(c, 2, 1)[1].to_vector<float>(), (std::vector<float>{2, 10, 5, 11}));
}

TEST(Array, WrapsForeignMemoryWithoutCopying) {
  auto owner = std::make_shared<std::vector<float>>(iota(6));
  const array a = array::wrap(owner->data(), {2, 3}, dtype::f32, owner);
  EXPECT_FALSE(a.buffer()->owns_memory());
  EXPECT_EQ(a.data<float>(), owner->data());
  const std::weak_ptr<std::vector<float>> watch = owner;
  owner.reset();
  EXPECT_FALSE(watch.expired());  // the array keeps its owner alive
  EXPECT_EQ(sum(a).item<float>(), 15.0f);
}

TEST(Array, ViewOutsideBufferIsRejected) {
  const array a = zeros({4});
  EXPECT_THROW(array::view(a, {5}, {1}, 0), std::invalid_argument);
  EXPECT_THROW(array::view(a, {2}, {3}, 1), std::invalid_argument);
  EXPECT_NO_THROW(array::view(a, {2}, {2}, 1));
}

TEST(Allocator, ReusesFreedBuffers) {
  allocator::clear_cache();
  { const array a = zeros({1 << 20}); }
  const auto before = allocator::get_stats();
  EXPECT_GE(before.cached_bytes, size_t{4} << 20);
  { const array b = zeros({1 << 20}); }
  const auto after = allocator::get_stats();
  EXPECT_EQ(after.hits, before.hits + 1);
  EXPECT_EQ(after.misses, before.misses);
  allocator::clear_cache();
  EXPECT_EQ(allocator::get_stats().cached_bytes, 0u);
}

// A 4.5 MB buffer sits in a 6 MiB class; once written, nothing past its last 4 KiB page may be resident (a
// huge page over the class's tail would be, where transparent huge pages are on).
TEST(Allocator, TheClassTailPastTheBytesAskedForStaysUnbacked) {
  allocator::clear_cache();
  const size_t nbytes = 4500000, page = 4096, cls = size_t{6} << 20;
  void* p = allocator::allocate(nbytes);
  std::memset(p, 1, nbytes);
  const size_t tail = (nbytes + page - 1) / page * page;
  std::vector<unsigned char> resident((cls - tail) / page);
  ASSERT_EQ(mincore(static_cast<char*>(p) + tail, cls - tail, resident.data()), 0) << std::strerror(errno);
  for (size_t i = 0; i < resident.size(); ++i)
    ASSERT_EQ(resident[i] & 1, 0) << "page " << i << " of the tail";
  allocator::release(p, nbytes);
  allocator::clear_cache();
}

// A request of a huge page or more may take a larger cached block, up to twice its own class, the smallest
// there is; released, the block goes back to its own class.
TEST(Allocator, ALargeRequestTakesTheSmallestCachedBlockUpToTwiceItsClass) {
  allocator::clear_cache();
  const size_t mib = size_t{1} << 20;
  void* six = allocator::allocate(5 * mib);    // class 6 MiB
  void* eight = allocator::allocate(7 * mib);  // class 8 MiB
  allocator::release(six, 5 * mib);
  allocator::release(eight, 7 * mib);
  const auto before = allocator::get_stats();
  void* p = allocator::allocate(3 * mib);  // class 4 MiB: served by the 6 MiB block
  EXPECT_EQ(p, six);
  allocator::release(p, 3 * mib);
  void* q = allocator::allocate(5 * mib);  // class 6 MiB: its own block is back in its class
  EXPECT_EQ(q, six);
  allocator::release(q, 5 * mib);
  void* small = allocator::allocate(mib + 1);  // class 2 MiB: the cached blocks are over twice its size
  EXPECT_NE(small, six);
  EXPECT_NE(small, eight);
  allocator::release(small, mib + 1);
  const auto after = allocator::get_stats();
  EXPECT_EQ(after.hits, before.hits + 2);
  EXPECT_EQ(after.misses, before.misses + 1);
  EXPECT_EQ(after.cached_bytes, 16 * mib);
  allocator::clear_cache();
  EXPECT_EQ(allocator::get_stats().cached_bytes, 0u);
}

TEST(Allocator, LargeBuffersAreHugePageAligned) {
  for (const int64_t n : {int64_t{3 << 20} / 4 + 5, int64_t{1} << 19, int64_t{5} << 20}) {
    const array big = zeros({n});
    EXPECT_EQ(reinterpret_cast<uintptr_t>(big.data<float>()) % (size_t{2} << 20), 0u) << n;
    EXPECT_EQ(sum(big).item<float>(), 0.0f);
  }
  EXPECT_EQ(reinterpret_cast<uintptr_t>(zeros({3}).data<float>()) % 64, 0u);
}

}  // namespace
}  // namespace mlxd
