// mlxd::array: a cheap, shared handle to an n-dimensional view of a typed buffer.
//
// Copying an array copies a pointer. Views (reshape, transpose, slice, broadcast) share the buffer and differ
// in shape, strides (in elements, possibly 0 or negative-free) and offset. Arrays are immutable once an op
// returns them; kernels write only into freshly allocated outputs, which is what makes sharing safe.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "mlxd/core/dtype.h"

namespace mlxd {

using shape_t = std::vector<int64_t>;

// The natural dtype of a C++ element type (double maps to f32, the working precision).
template <class T>
constexpr dtype dtype_of() {
  if constexpr (std::is_same_v<T, int32_t>) return dtype::i32;
  if constexpr (std::is_same_v<T, int64_t>) return dtype::i64;
  if constexpr (std::is_same_v<T, uint8_t>) return dtype::u8;
  return dtype::f32;
}

// A flat byte buffer. Owns memory from the caching allocator, or wraps foreign memory (an mmap'd file) and
// keeps its owner alive through `keep_alive`.
class storage {
 public:
  explicit storage(size_t nbytes);                                             // allocate (uninitialised)
  storage(void* data, size_t nbytes, std::shared_ptr<const void> keep_alive);  // wrap, no copy
  ~storage();
  storage(const storage&) = delete;
  storage& operator=(const storage&) = delete;

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  bool owns_memory() const { return owned_; }

 private:
  void* data_;
  size_t nbytes_;
  bool owned_;
  std::shared_ptr<const void> keep_alive_;
};

namespace autograd {
struct node;
}

class array {
 public:
  // An empty f32 array of shape {0}.
  array();
  // A 0-d f32 scalar.
  array(float value);  // NOLINT(google-explicit-constructor): lets `x * 2.0f` read naturally.

  // A new, uninitialised, contiguous array. Throws std::invalid_argument for a negative dimension or more
  // than 2^48 elements. A block-quantized array (see dtype.h) needs at least one dimension, the last one a
  // multiple of the block size, so that every row is whole blocks.
  static array empty(const shape_t& shape, dtype t);
  // Copies `values` (of C++ type matching `t` after conversion) into a new contiguous array.
  template <class T>
  static array from(std::span<const T> values, const shape_t& shape, dtype t);
  template <class T>
  static array from(const std::vector<T>& values, const shape_t& shape, dtype t = dtype_of<T>()) {
    return from(std::span<const T>(values), shape, t);
  }
  static array from(std::initializer_list<float> values, const shape_t& shape, dtype t = dtype::f32) {
    return from(std::span<const float>(values.begin(), values.size()), shape, t);
  }
  // Wraps existing contiguous memory without copying; `keep_alive` owns it for as long as any view lives.
  static array wrap(void* data, const shape_t& shape, dtype t, std::shared_ptr<const void> keep_alive);
  // A view over `base`'s buffer with the given layout (strides and offset in elements). Validated against
  // the buffer size. Views of block-quantized arrays must be contiguous whole rows (a reshape keeping the
  // last dimension a multiple of the block size, or a range of rows); anything else throws.
  static array view(const array& base, const shape_t& shape, const shape_t& strides, int64_t offset);

  dtype type() const;
  const shape_t& shape() const;
  int64_t shape(int axis) const;  // negative axes count from the end
  const shape_t& strides() const;
  int64_t offset() const;
  int ndim() const;
  int64_t size() const;                                // number of elements
  size_t itemsize() const { return size_of(type()); }  // throws for block-quantized dtypes
  size_t nbytes() const;                               // bytes the view's elements occupy

  // Row-major contiguous with no gaps (a broadcast view is not contiguous).
  bool is_contiguous() const;
  bool shares_storage(const array& other) const;
  const std::shared_ptr<storage>& buffer() const;

  // Pointer to the first element of the view (the first block, for a quantized view). T must match the
  // dtype's storage size.
  template <class T>
  const T* data() const {
    return reinterpret_cast<const T*>(raw_data());
  }
  template <class T>
  T* mutable_data() const {
    return reinterpret_cast<T*>(const_cast<void*>(raw_data()));
  }
  const void* raw_data() const;

  // The elements in logical (row-major) order, converted to T. Block-quantized arrays have no element access:
  // these throw std::invalid_argument (convert with astype first).
  template <class T>
  std::vector<T> to_vector() const;
  // The single element of a size-1 array, converted to T.
  template <class T>
  T item() const;

  std::string to_string() const;  // e.g. "f32[2,3]"

  // Autograd bookkeeping; see autograd.h.
  const std::shared_ptr<autograd::node>& grad_node() const;
  void set_grad_node(std::shared_ptr<autograd::node> n) const;
  const void* id() const { return state_.get(); }  // identity of this handle's state

 private:
  struct state;
  explicit array(std::shared_ptr<state> s) : state_(std::move(s)) {}
  std::shared_ptr<state> state_;
};

std::string shape_to_string(const shape_t& shape);
int64_t shape_size(const shape_t& shape);
shape_t contiguous_strides(const shape_t& shape);

}  // namespace mlxd
