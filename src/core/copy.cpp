#include "copy.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "detail.h"
#include "kernels/kernels.h"
#include "mlxd/core/thread_pool.h"

namespace mlxd::detail {
namespace {

// Same-dtype copy moves raw elements of the given width.
template <class Word>
void copy_same(const array& src, const array& dst) {
  const Word* s = static_cast<const Word*>(src.buffer()->data());
  Word* d = static_cast<Word*>(dst.buffer()->data());
  if (src.is_contiguous() && dst.is_contiguous()) {
    std::memcpy(d + dst.offset(), s + src.offset(), src.nbytes());
    return;
  }
  if (dst.is_contiguous()) {
    int64_t i = dst.offset();
    for_each_offset(src.shape(), src.strides(), src.offset(), [&](int64_t off) { d[i++] = s[off]; });
    return;
  }
  std::vector<int64_t> dst_offsets;
  dst_offsets.reserve(static_cast<size_t>(dst.size()));
  for_each_offset(dst.shape(), dst.strides(), dst.offset(), [&](int64_t off) { dst_offsets.push_back(off); });
  size_t i = 0;
  for_each_offset(src.shape(), src.strides(), src.offset(),
                  [&](int64_t off) { d[dst_offsets[i++]] = s[off]; });
}

// Converting copy: one read and one write conversion per element, through double or int64.
template <class Wide>
void copy_convert(const array& src, const array& dst) {
  const void* s = src.buffer()->data();
  void* d = dst.buffer()->data();
  const dtype st = src.type(), dt = dst.type();
  std::vector<int64_t> dst_offsets;
  dst_offsets.reserve(static_cast<size_t>(dst.size()));
  for_each_offset(dst.shape(), dst.strides(), dst.offset(), [&](int64_t off) { dst_offsets.push_back(off); });
  size_t i = 0;
  for_each_offset(src.shape(), src.strides(), src.offset(),
                  [&](int64_t off) { store_as<Wide>(d, dst_offsets[i++], dt, load_as<Wide>(s, off, st)); });
}

// f32 <-> f16/bf16, the conversions every half-precision op does twice, for contiguous arrays and for views
// whose rows (last axis) are contiguous, such as a block of positions of an f16 KV cache.
bool copy_half(const array& src, const array& dst) {
  const dtype st = src.type(), dt = dst.type();
  const bool narrow = st == dtype::f32 && (dt == dtype::f16 || dt == dtype::bf16);
  const bool widen = dt == dtype::f32 && (st == dtype::f16 || st == dtype::bf16);
  if (!narrow && !widen) return false;
  const bool whole = src.is_contiguous() && dst.is_contiguous();
  if (!whole && (src.ndim() == 0 || src.strides().back() != 1 || dst.strides().back() != 1)) return false;
  const int64_t row = whole ? src.size() : src.shape().back();
  std::vector<int64_t> src_rows, dst_rows;  // offsets of each row's first element
  if (whole) {
    src_rows = {src.offset()};
    dst_rows = {dst.offset()};
  } else {
    const shape_t outer(src.shape().begin(), src.shape().end() - 1);
    for_each_offset(outer, shape_t(src.strides().begin(), src.strides().end() - 1), src.offset(),
                    [&](int64_t off) { src_rows.push_back(off); });
    for_each_offset(outer, shape_t(dst.strides().begin(), dst.strides().end() - 1), dst.offset(),
                    [&](int64_t off) { dst_rows.push_back(off); });
  }
  const kernels::table* kt = kernels::active();
  const auto convert = [&](int64_t r, int64_t b, int64_t e) {
    if (narrow) {
      const float* s = static_cast<const float*>(src.buffer()->data()) + src_rows[r];
      uint16_t* d = static_cast<uint16_t*>(dst.buffer()->data()) + dst_rows[r];
      for (int64_t i = b; i < e; ++i) d[i] = dt == dtype::f16 ? f32_to_f16(s[i]) : f32_to_bf16(s[i]);
    } else {
      const uint16_t* s = static_cast<const uint16_t*>(src.buffer()->data()) + src_rows[r];
      float* d = static_cast<float*>(dst.buffer()->data()) + dst_rows[r];
      if (st == dtype::f16 && kt)
        kt->f16_to_f32_row(s + b, d + b, e - b);
      else
        for (int64_t i = b; i < e; ++i) d[i] = st == dtype::f16 ? f16_to_f32(s[i]) : bf16_to_f32(s[i]);
    }
  };
  constexpr int64_t grain = 1 << 15;  // elements per task
  if (whole) {
    parallel_for(row, grain, [&](int64_t b, int64_t e) { convert(0, b, e); });
  } else {
    parallel_for(static_cast<int64_t>(src_rows.size()), std::max<int64_t>(1, grain / row),
                 [&](int64_t b, int64_t e) {
                   for (int64_t r = b; r < e; ++r) convert(r, 0, row);
                 });
  }
  return true;
}

}  // namespace

void copy_into(const array& src, const array& dst) {
  if (src.shape() != dst.shape())
    fail("copy", "shapes ", src.to_string(), " and ", dst.to_string(), " differ");
  if (src.size() == 0) return;
  if (is_quantized(src.type()) || is_quantized(dst.type())) {
    copy_quantized(src, dst);
    return;
  }
  if (src.type() == dst.type()) {
    switch (src.itemsize()) {
      case 1:
        copy_same<uint8_t>(src, dst);
        return;
      case 2:
        copy_same<uint16_t>(src, dst);
        return;
      case 4:
        copy_same<uint32_t>(src, dst);
        return;
      default:
        copy_same<uint64_t>(src, dst);
        return;
    }
  }
  if (copy_half(src, dst)) return;
  if (src.type() == dtype::i64 || dst.type() == dtype::i64) {
    copy_convert<int64_t>(src, dst);  // exact for every value an i64 can hold
  } else {
    copy_convert<double>(src, dst);
  }
}

array strided_window(const array& a, const shape_t& begin, const shape_t& step, const shape_t& shape) {
  shape_t strides(shape.size());
  int64_t offset = a.offset();
  for (size_t i = 0; i < shape.size(); ++i) {
    strides[i] = a.strides()[i] * step[i];
    offset += begin[i] * a.strides()[i];
  }
  return array::view(a, shape, strides, offset);
}

}  // namespace mlxd::detail
