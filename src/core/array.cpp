#include "mlxd/core/array.h"

#include <sstream>

#include "detail.h"
#include "mlxd/core/allocator.h"
#include "mlxd/core/autograd.h"

namespace mlxd {

storage::storage(size_t nbytes) : data_(allocator::allocate(nbytes)), nbytes_(nbytes), owned_(true) {}

storage::storage(void* data, size_t nbytes, std::shared_ptr<const void> keep_alive)
    : data_(data), nbytes_(nbytes), owned_(false), keep_alive_(std::move(keep_alive)) {}

storage::~storage() {
  if (owned_) allocator::release(data_, nbytes_);
}

struct array::state {
  std::shared_ptr<storage> buf;
  dtype type = dtype::f32;
  shape_t shape;
  shape_t strides;
  int64_t offset = 0;
  std::shared_ptr<autograd::node> node;
};

int64_t shape_size(const shape_t& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

shape_t contiguous_strides(const shape_t& shape) {
  shape_t strides(shape.size());
  int64_t s = 1;
  for (int i = static_cast<int>(shape.size()) - 1; i >= 0; --i) {
    strides[i] = s;
    s *= std::max<int64_t>(shape[i], 1);
  }
  return strides;
}

std::string shape_to_string(const shape_t& shape) {
  std::ostringstream os;
  os << '[';
  for (size_t i = 0; i < shape.size(); ++i) os << (i ? "," : "") << shape[i];
  os << ']';
  return os.str();
}

namespace {

// Bytes that n elements of t occupy; n is a whole number of blocks for quantized types.
size_t storage_bytes(dtype t, int64_t n) {
  return static_cast<size_t>(n / block_size(t)) * block_bytes(t);
}

void check_block_rows(const shape_t& shape, dtype t, const char* op) {
  if (!is_quantized(t)) return;
  if (shape.empty() || shape.back() % block_size(t) != 0) {
    detail::fail(op, name(t), " needs a last dimension that is a multiple of its block size ", block_size(t),
                 ", got shape ", shape_to_string(shape));
  }
}

}  // namespace

array::array() : array(empty({0}, dtype::f32)) {}

array::array(float value) : array(empty({}, dtype::f32)) {
  *mutable_data<float>() = value;
}

array array::empty(const shape_t& shape, dtype t) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) detail::fail("array", "negative dimension in shape ", shape_to_string(shape));
    if (d > 0 && n > (int64_t{1} << 48) / d)
      detail::fail("array", "shape ", shape_to_string(shape), " is too large");
    n *= d;
  }
  check_block_rows(shape, t, "array");
  auto s = std::make_shared<state>();
  s->buf = std::make_shared<storage>(storage_bytes(t, n));
  s->type = t;
  s->shape = shape;
  s->strides = contiguous_strides(shape);
  return array(std::move(s));
}

template <class T>
array array::from(std::span<const T> values, const shape_t& shape, dtype t) {
  array out = empty(shape, t);
  if (static_cast<int64_t>(values.size()) != out.size()) {
    detail::fail("array::from", values.size(), " values for shape ", shape_to_string(shape));
  }
  void* p = out.mutable_data<uint8_t>();
  for (size_t i = 0; i < values.size(); ++i) detail::store_as(p, static_cast<int64_t>(i), t, values[i]);
  return out;
}

template array array::from<float>(std::span<const float>, const shape_t&, dtype);
template array array::from<double>(std::span<const double>, const shape_t&, dtype);
template array array::from<int32_t>(std::span<const int32_t>, const shape_t&, dtype);
template array array::from<int64_t>(std::span<const int64_t>, const shape_t&, dtype);
template array array::from<uint8_t>(std::span<const uint8_t>, const shape_t&, dtype);

array array::wrap(void* data, const shape_t& shape, dtype t, std::shared_ptr<const void> keep_alive) {
  check_block_rows(shape, t, "array::wrap");
  auto s = std::make_shared<state>();
  s->type = t;
  s->shape = shape;
  s->strides = contiguous_strides(shape);
  s->buf = std::make_shared<storage>(data, storage_bytes(t, shape_size(shape)), std::move(keep_alive));
  return array(std::move(s));
}

array array::view(const array& base, const shape_t& shape, const shape_t& strides, int64_t offset) {
  if (shape.size() != strides.size()) detail::fail("view", "shape and strides differ in rank");
  // The furthest element addressed must lie inside the buffer.
  int64_t lo = offset, hi = offset;
  bool empty_view = false;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] < 0) detail::fail("view", "negative dimension in ", shape_to_string(shape));
    if (shape[i] == 0) empty_view = true;
    const int64_t reach = (shape[i] - 1) * strides[i];
    (reach < 0 ? lo : hi) += reach;
  }
  const dtype t = base.type();
  if (is_quantized(t)) {
    check_block_rows(shape, t, "view");
    if (strides != contiguous_strides(shape) || offset % block_size(t) != 0) {
      detail::fail("view", name(t), " views must be contiguous whole rows; got layout ",
                   shape_to_string(shape), " strides ", shape_to_string(strides), " offset ", offset);
    }
  }
  const int64_t capacity =
      static_cast<int64_t>(base.buffer()->nbytes() / block_bytes(t)) * block_size(t);  // in elements
  if (!empty_view && (lo < 0 || hi >= capacity)) {
    detail::fail("view", "layout ", shape_to_string(shape), " strides ", shape_to_string(strides), " offset ",
                 offset, " exceeds a buffer of ", capacity, " elements");
  }
  auto s = std::make_shared<state>();
  s->buf = base.state_->buf;
  s->type = base.type();
  s->shape = shape;
  s->strides = strides;
  s->offset = offset;
  return array(std::move(s));
}

dtype array::type() const {
  return state_->type;
}
const shape_t& array::shape() const {
  return state_->shape;
}
int64_t array::shape(int axis) const {
  return state_->shape[detail::normalize_axis(axis, ndim(), "shape")];
}
const shape_t& array::strides() const {
  return state_->strides;
}
int64_t array::offset() const {
  return state_->offset;
}
int array::ndim() const {
  return static_cast<int>(state_->shape.size());
}
int64_t array::size() const {
  return shape_size(state_->shape);
}
const std::shared_ptr<storage>& array::buffer() const {
  return state_->buf;
}
bool array::shares_storage(const array& other) const {
  return state_->buf == other.state_->buf;
}

bool array::is_contiguous() const {
  int64_t expected = 1;
  for (int i = ndim() - 1; i >= 0; --i) {
    if (state_->shape[i] == 1) continue;
    if (state_->strides[i] != expected) return size() == 0;
    expected *= state_->shape[i];
  }
  return true;
}

size_t array::nbytes() const {
  return storage_bytes(type(), size());
}

const void* array::raw_data() const {
  return static_cast<const uint8_t*>(state_->buf->data()) + storage_bytes(type(), state_->offset);
}

template <class T>
std::vector<T> array::to_vector() const {
  if (is_quantized(type()))
    detail::fail("to_vector", to_string(), " is block-quantized; convert it with astype first");
  std::vector<T> out;
  out.reserve(static_cast<size_t>(size()));
  const void* base = state_->buf->data();
  const dtype t = type();
  detail::for_each_offset(shape(), strides(), offset(),
                          [&](int64_t off) { out.push_back(detail::load_as<T>(base, off, t)); });
  return out;
}

template std::vector<float> array::to_vector<float>() const;
template std::vector<double> array::to_vector<double>() const;
template std::vector<int32_t> array::to_vector<int32_t>() const;
template std::vector<int64_t> array::to_vector<int64_t>() const;
template std::vector<uint8_t> array::to_vector<uint8_t>() const;

template <class T>
T array::item() const {
  if (size() != 1) detail::fail("item", "array ", to_string(), " has ", size(), " elements, not 1");
  return detail::load_as<T>(raw_data(), 0, type());
}

template float array::item<float>() const;
template double array::item<double>() const;
template int32_t array::item<int32_t>() const;
template int64_t array::item<int64_t>() const;
template bool array::item<bool>() const;

std::string array::to_string() const {
  return std::string(name(type())) + shape_to_string(shape());
}

const std::shared_ptr<autograd::node>& array::grad_node() const {
  return state_->node;
}
void array::set_grad_node(std::shared_ptr<autograd::node> n) const {
  state_->node = std::move(n);
}

}  // namespace mlxd
