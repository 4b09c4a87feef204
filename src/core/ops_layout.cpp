#include <algorithm>
#include <numeric>

#include "copy.h"
#include "detail.h"
#include "mlxd/core/autograd.h"
#include "mlxd/core/ops.h"

namespace mlxd {
namespace detail {

int normalize_axis(int axis, int ndim, const char* op) {
  if (axis < -ndim || axis >= std::max(ndim, 1) || (ndim == 0 && axis != 0 && axis != -1)) {
    fail(op, "axis ", axis, " is out of range for ", ndim, " dimensions");
  }
  return axis < 0 ? axis + ndim : axis;
}

axes_t normalize_axes(const axes_t& axes, int ndim, const char* op) {
  axes_t out;
  if (axes.empty()) {
    out.resize(ndim);
    std::iota(out.begin(), out.end(), 0);
    return out;
  }
  for (int a : axes) out.push_back(normalize_axis(a, ndim, op));
  std::sort(out.begin(), out.end());
  if (std::adjacent_find(out.begin(), out.end()) != out.end()) fail(op, "repeated axis in the axis list");
  return out;
}

array prepare(const array& a, dtype t) {
  // Ops see quantized arrays only through astype, take and quantized_matmul: never an implicit dequantize.
  if (is_quantized(a.type())) {
    fail("ops", a.to_string(),
         " is block-quantized; element-wise ops, reductions and norms need astype first");
  }
  array converted = a.type() == t ? a : astype(a, t);
  return contiguous(converted);
}

}  // namespace detail

namespace {

// Strides for `shape` that address the same elements as `a`, or empty if a copy is needed. Groups of old
// and new dims with equal element counts must each be laid out as one contiguous run (NumPy's rule).
shape_t reshape_strides(const array& a, const shape_t& shape) {
  if (a.is_contiguous()) return contiguous_strides(shape);
  shape_t old_shape, old_strides;
  for (int i = 0; i < a.ndim(); ++i) {
    if (a.shape()[i] == 1) continue;
    old_shape.push_back(a.shape()[i]);
    old_strides.push_back(a.strides()[i]);
  }
  const size_t n_old = old_shape.size(), n_new = shape.size();
  shape_t strides(n_new, 1);
  size_t oi = 0, oj = 1, ni = 0, nj = 1;
  while (ni < n_new && oi < n_old) {
    int64_t np = shape[ni], op = old_shape[oi];
    while (np != op) {
      if (np < op) {
        np *= shape[nj++];
      } else {
        op *= old_shape[oj++];
      }
    }
    for (size_t k = oi; k + 1 < oj; ++k) {
      if (old_strides[k] != old_shape[k + 1] * old_strides[k + 1]) return {};
    }
    strides[nj - 1] = old_strides[oj - 1];
    for (size_t k = nj - 1; k > ni; --k) strides[k - 1] = strides[k] * shape[k];
    ni = nj++;
    oi = oj++;
  }
  return strides;
}

}  // namespace

array reshape(const array& a, shape_t shape) {
  int infer = -1;
  int64_t known = 1;
  for (int i = 0; i < static_cast<int>(shape.size()); ++i) {
    if (shape[i] == -1) {
      if (infer >= 0) detail::fail("reshape", "more than one -1 in ", shape_to_string(shape));
      infer = i;
    } else if (shape[i] < 0) {
      detail::fail("reshape", "negative dimension in ", shape_to_string(shape));
    } else {
      known *= shape[i];
    }
  }
  if (infer >= 0) {
    if (known == 0 || a.size() % known != 0) {
      detail::fail("reshape", "cannot infer -1 for ", a.to_string(), " into ", shape_to_string(shape));
    }
    shape[infer] = a.size() / known;
  }
  if (shape_size(shape) != a.size()) {
    detail::fail("reshape", "cannot reshape ", a.to_string(), " into ", shape_to_string(shape));
  }
  if (shape == a.shape()) return a;
  shape_t strides = a.size() == 0 ? contiguous_strides(shape) : reshape_strides(a, shape);
  array out = strides.empty() && !shape.empty() ? reshape(contiguous(a), shape)
                                                : array::view(a, shape, strides, a.offset());
  if (autograd::is_recording()) {
    const shape_t in_shape = a.shape();
    autograd::record(out, {a},
                     [in_shape](const array& ct) { return std::vector<array>{reshape(ct, in_shape)}; });
  }
  return out;
}

array flatten(const array& a) {
  return reshape(a, {a.size()});
}

array transpose(const array& a, const axes_t& axes) {
  if (static_cast<int>(axes.size()) != a.ndim()) {
    detail::fail("transpose", "axes of length ", axes.size(), " for ", a.to_string());
  }
  shape_t shape(axes.size()), strides(axes.size());
  axes_t inverse(axes.size(), -1);
  for (size_t i = 0; i < axes.size(); ++i) {
    const int ax = detail::normalize_axis(axes[i], a.ndim(), "transpose");
    if (inverse[ax] != -1) detail::fail("transpose", "repeated axis ", axes[i]);
    inverse[ax] = static_cast<int>(i);
    shape[i] = a.shape()[ax];
    strides[i] = a.strides()[ax];
  }
  array out = array::view(a, shape, strides, a.offset());
  if (autograd::is_recording()) {
    autograd::record(out, {a},
                     [inverse](const array& ct) { return std::vector<array>{transpose(ct, inverse)}; });
  }
  return out;
}

array transpose(const array& a) {
  axes_t axes(a.ndim());
  std::iota(axes.rbegin(), axes.rend(), 0);
  return transpose(a, axes);
}

array swapaxes(const array& a, int axis1, int axis2) {
  axes_t axes(a.ndim());
  std::iota(axes.begin(), axes.end(), 0);
  std::swap(axes[detail::normalize_axis(axis1, a.ndim(), "swapaxes")],
            axes[detail::normalize_axis(axis2, a.ndim(), "swapaxes")]);
  return transpose(a, axes);
}

array slice(const array& a, const shape_t& starts, const shape_t& stops, const shape_t& steps) {
  const size_t nd = static_cast<size_t>(a.ndim());
  if (starts.size() != nd || stops.size() != nd || (!steps.empty() && steps.size() != nd)) {
    detail::fail("slice", "need one start, stop (and step) per axis of ", a.to_string());
  }
  shape_t shape(nd), strides(nd), begin(nd), step(nd);
  int64_t offset = a.offset();
  for (size_t i = 0; i < nd; ++i) {
    const int64_t n = a.shape()[i];
    step[i] = steps.empty() ? 1 : steps[i];
    if (step[i] <= 0) detail::fail("slice", "steps must be positive, got ", step[i]);
    auto clamp = [n](int64_t v) { return std::clamp(v < 0 ? v + n : v, int64_t{0}, n); };
    const int64_t lo = clamp(starts[i]), hi = std::max(clamp(stops[i]), clamp(starts[i]));
    begin[i] = lo;
    shape[i] = (hi - lo + step[i] - 1) / step[i];
    strides[i] = a.strides()[i] * step[i];
    if (shape[i] > 0) offset += lo * a.strides()[i];
  }
  array out = array::view(a, shape, strides, offset);
  if (autograd::is_recording()) {
    const shape_t in_shape = a.shape();
    autograd::record(out, {a}, [in_shape, begin, step](const array& ct) {
      array grad = zeros(in_shape, ct.type());
      detail::copy_into(ct, detail::strided_window(grad, begin, step, ct.shape()));
      return std::vector<array>{grad};
    });
  }
  return out;
}

array slice_axis(const array& a, int axis, int64_t start, int64_t stop, int64_t step) {
  const int ax = detail::normalize_axis(axis, a.ndim(), "slice_axis");
  shape_t starts(a.ndim(), 0), stops = a.shape(), steps(a.ndim(), 1);
  starts[ax] = start;
  stops[ax] = stop;
  steps[ax] = step;
  return slice(a, starts, stops, steps);
}

shape_t broadcast_shapes(const shape_t& a, const shape_t& b) {
  const size_t nd = std::max(a.size(), b.size());
  shape_t out(nd);
  for (size_t i = 0; i < nd; ++i) {
    const int64_t da = i < nd - a.size() ? 1 : a[i - (nd - a.size())];
    const int64_t db = i < nd - b.size() ? 1 : b[i - (nd - b.size())];
    if (da != db && da != 1 && db != 1) {
      detail::fail("broadcast", "shapes ", shape_to_string(a), " and ", shape_to_string(b),
                   " do not broadcast");
    }
    out[i] = da == 1 ? db : da;
  }
  return out;
}

array broadcast_to(const array& a, const shape_t& shape) {
  if (a.shape() == shape) return a;
  if (shape.size() < static_cast<size_t>(a.ndim()) || broadcast_shapes(a.shape(), shape) != shape) {
    detail::fail("broadcast_to", "cannot broadcast ", a.to_string(), " to ", shape_to_string(shape));
  }
  const size_t extra = shape.size() - a.ndim();
  shape_t strides(shape.size(), 0);
  for (size_t i = extra; i < shape.size(); ++i) {
    strides[i] = a.shape()[i - extra] == shape[i] ? a.strides()[i - extra] : 0;
  }
  array out = array::view(a, shape, strides, a.offset());
  if (autograd::is_recording()) {
    const shape_t in_shape = a.shape();
    autograd::record(out, {a},
                     [in_shape](const array& ct) { return std::vector<array>{unbroadcast(ct, in_shape)}; });
  }
  return out;
}

array expand_dims(const array& a, int axis) {
  const int ax = detail::normalize_axis(axis, a.ndim() + 1, "expand_dims");
  shape_t shape = a.shape();
  shape.insert(shape.begin() + ax, 1);
  return reshape(a, shape);
}

array squeeze(const array& a, const axes_t& axes) {
  const axes_t ax = detail::normalize_axes(axes, a.ndim(), "squeeze");
  shape_t shape;
  for (int i = 0; i < a.ndim(); ++i) {
    const bool drop = std::find(ax.begin(), ax.end(), i) != ax.end();
    if (drop && a.shape()[i] != 1) detail::fail("squeeze", "axis ", i, " of ", a.to_string(), " is not 1");
    if (!drop) shape.push_back(a.shape()[i]);
  }
  return reshape(a, shape);
}

array squeeze(const array& a) {
  axes_t axes;
  for (int i = 0; i < a.ndim(); ++i) {
    if (a.shape()[i] == 1) axes.push_back(i);
  }
  return axes.empty() ? a : squeeze(a, axes);
}

array contiguous(const array& a) {
  if (is_quantized(a.type())) return a;  // quantized views are always contiguous rows
  if (a.is_contiguous() &&
      a.offset() + a.size() <= static_cast<int64_t>(a.buffer()->nbytes() / a.itemsize())) {
    return a;
  }
  array out = array::empty(a.shape(), a.type());
  detail::copy_into(a, out);
  if (autograd::is_recording()) {
    autograd::record(out, {a}, [](const array& ct) { return std::vector<array>{ct}; });
  }
  return out;
}

array astype(const array& a, dtype t) {
  if (a.type() == t) return a;
  array out = array::empty(a.shape(), t);
  detail::copy_into(a, out);
  const dtype in_type = a.type();
  if (is_floating(in_type) && is_floating(t)) {
    if (autograd::is_recording()) {
      autograd::record(out, {a},
                       [in_type](const array& ct) { return std::vector<array>{astype(ct, in_type)}; });
    }
  }
  return out;
}

array concatenate(const std::vector<array>& arrays, int axis) {
  if (arrays.empty()) detail::fail("concatenate", "no arrays given");
  const array& first = arrays[0];
  const int ax = detail::normalize_axis(axis, first.ndim(), "concatenate");
  dtype t = first.type();
  shape_t shape = first.shape();
  shape[ax] = 0;
  for (const array& a : arrays) {
    bool ok = a.ndim() == first.ndim();
    for (int i = 0; ok && i < a.ndim(); ++i) ok = i == ax || a.shape()[i] == first.shape()[i];
    if (!ok)
      detail::fail("concatenate", "shapes ", first.to_string(), " and ", a.to_string(), " differ off axis ",
                   ax);
    shape[ax] += a.shape()[ax];
    t = promote_types(t, a.type());
  }
  array out = array::empty(shape, t);
  shape_t begin(shape.size(), 0), step(shape.size(), 1);
  shape_t sizes;
  for (const array& a : arrays) {
    detail::copy_into(a, detail::strided_window(out, begin, step, a.shape()));
    begin[ax] += a.shape()[ax];
    sizes.push_back(a.shape()[ax]);
  }
  if (autograd::is_recording()) {
    autograd::record(out, arrays, [sizes, ax](const array& ct) {
      std::vector<array> parts;
      int64_t start = 0;
      for (int64_t n : sizes) {
        parts.push_back(slice_axis(ct, ax, start, start + n));
        start += n;
      }
      return parts;
    });
  }
  return out;
}

array stack(const std::vector<array>& arrays, int axis) {
  if (arrays.empty()) detail::fail("stack", "no arrays given");
  const int ax = detail::normalize_axis(axis, arrays[0].ndim() + 1, "stack");
  std::vector<array> expanded;
  for (const array& a : arrays) {
    if (a.shape() != arrays[0].shape())
      detail::fail("stack", "shapes ", arrays[0].to_string(), " and ", a.to_string());
    expanded.push_back(expand_dims(a, ax));
  }
  return concatenate(expanded, ax);
}

std::vector<array> split(const array& a, const shape_t& indices, int axis) {
  const int ax = detail::normalize_axis(axis, a.ndim(), "split");
  std::vector<array> parts;
  int64_t start = 0;
  for (int64_t idx : indices) {
    if (idx < start || idx > a.shape()[ax])
      detail::fail("split", "indices must be sorted and within the axis");
    parts.push_back(slice_axis(a, ax, start, idx));
    start = idx;
  }
  parts.push_back(slice_axis(a, ax, start, a.shape()[ax]));
  return parts;
}

std::vector<array> split(const array& a, int n_sections, int axis) {
  const int ax = detail::normalize_axis(axis, a.ndim(), "split");
  if (n_sections <= 0 || a.shape()[ax] % n_sections != 0) {
    detail::fail("split", "axis ", ax, " of ", a.to_string(), " does not split into ", n_sections,
                 " equal parts");
  }
  shape_t indices;
  for (int i = 1; i < n_sections; ++i) indices.push_back(a.shape()[ax] / n_sections * i);
  return split(a, indices, ax);
}

}  // namespace mlxd
