#include <cstring>

#include "detail.h"
#include "mlxd/core/ops.h"

namespace mlxd {

array full(const shape_t& shape, double value, dtype t) {
  array out = array::empty(shape, t);
  void* p = out.mutable_data<uint8_t>();
  const int64_t n = out.size();
  if (n == 0) return out;
  detail::store_as(p, 0, t, value);
  const size_t width = out.itemsize();
  for (int64_t i = 1; i < n; ++i) std::memcpy(static_cast<uint8_t*>(p) + i * width, p, width);
  return out;
}

array zeros(const shape_t& shape, dtype t) {
  array out = array::empty(shape, t);
  std::memset(out.mutable_data<uint8_t>(), 0, out.nbytes());
  return out;
}

array ones(const shape_t& shape, dtype t) {
  return full(shape, 1.0, t);
}
array zeros_like(const array& a) {
  return zeros(a.shape(), a.type());
}
array ones_like(const array& a) {
  return ones(a.shape(), a.type());
}
array scalar(double value, dtype t) {
  return full({}, value, t);
}

array arange(int64_t start, int64_t stop, int64_t step, dtype t) {
  if (step == 0) detail::fail("arange", "step must not be 0");
  const int64_t n = std::max<int64_t>(0, (stop - start + step + (step > 0 ? -1 : 1)) / step);
  array out = array::empty({n}, t);
  void* p = out.mutable_data<uint8_t>();
  for (int64_t i = 0; i < n; ++i) detail::store_as<int64_t>(p, i, t, start + i * step);
  return out;
}

}  // namespace mlxd
