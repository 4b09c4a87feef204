#include "copy.h"

#include <cstring>

#include "detail.h"
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

// Contiguous f32 <-> f16/bf16, the conversions every half-precision op does twice.
bool copy_half_contiguous(const array& src, const array& dst) {
  if (!src.is_contiguous() || !dst.is_contiguous()) return false;
  const int64_t n = src.size();
  const dtype st = src.type(), dt = dst.type();
  if (st == dtype::f32 && (dt == dtype::f16 || dt == dtype::bf16)) {
    const float* s = src.data<float>();
    uint16_t* d = dst.mutable_data<uint16_t>();
    parallel_for(n, 1 << 15, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) d[i] = dt == dtype::f16 ? f32_to_f16(s[i]) : f32_to_bf16(s[i]);
    });
    return true;
  }
  if (dt == dtype::f32 && (st == dtype::f16 || st == dtype::bf16)) {
    const uint16_t* s = src.data<uint16_t>();
    float* d = dst.mutable_data<float>();
    parallel_for(n, 1 << 15, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) d[i] = st == dtype::f16 ? f16_to_f32(s[i]) : bf16_to_f32(s[i]);
    });
    return true;
  }
  return false;
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
  if (copy_half_contiguous(src, dst)) return;
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
