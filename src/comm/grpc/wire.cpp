#include "comm/grpc/wire.h"

#include <algorithm>
#include <cstring>

namespace mlxd::comm::wire {

v1::DType to_wire(dtype t) {
  switch (t) {
    case dtype::f32:
      return v1::DTYPE_F32;
    case dtype::f16:
      return v1::DTYPE_F16;
    case dtype::bf16:
      return v1::DTYPE_BF16;
    case dtype::i32:
      return v1::DTYPE_I32;
    case dtype::i64:
      return v1::DTYPE_I64;
    case dtype::u8:
      return v1::DTYPE_U8;
    case dtype::boolean:
      return v1::DTYPE_BOOL;
    case dtype::q8_0:
    case dtype::q4_0:
    case dtype::q4_k:
    case dtype::q6_k:
    case dtype::count:
      break;
  }
  return v1::DTYPE_UNSPECIFIED;
}

std::optional<dtype> from_wire(int code) {
  switch (code) {
    case v1::DTYPE_F32:
      return dtype::f32;
    case v1::DTYPE_F16:
      return dtype::f16;
    case v1::DTYPE_BF16:
      return dtype::bf16;
    case v1::DTYPE_I32:
      return dtype::i32;
    case v1::DTYPE_I64:
      return dtype::i64;
    case v1::DTYPE_U8:
      return dtype::u8;
    case v1::DTYPE_BOOL:
      return dtype::boolean;
    default:
      return std::nullopt;
  }
}

void for_each_chunk(const array& x, size_t chunk_bytes, v1::TensorChunk& chunk,
                    const std::function<void(const v1::TensorChunk&)>& emit) {
  chunk.set_dtype(to_wire(x.type()));
  chunk.clear_shape();
  for (int64_t d : x.shape()) chunk.add_shape(d);
  const size_t total = x.nbytes();
  chunk.set_total_bytes(total);
  const auto* bytes = static_cast<const char*>(x.raw_data());
  size_t offset = 0;
  do {
    const size_t n = std::min(chunk_bytes, total - offset);
    chunk.set_offset(offset);
    chunk.mutable_data()->assign(bytes + offset, n);
    emit(chunk);
    offset += n;
  } while (offset < total);
}

std::string assembler::add(const v1::TensorChunk& c, std::optional<array>& done) {
  chunk_header h;
  h.dtype = c.dtype();
  h.shape.assign(c.shape().begin(), c.shape().end());
  h.total_bytes = c.total_bytes();
  h.offset = c.offset();
  const std::string& data = c.data();
  return add(
      h, data.size(), [&](const auto& piece) { piece(data.data(), data.size()); }, done);
}

std::string assembler::add(const chunk_header& c, size_t n, const byte_pieces& data,
                           std::optional<array>& done) {
  auto refuse = [&](std::string why) {
    started_ = false;
    partial_.reset();
    direct_ = nullptr;
    received_ = 0;
    return why;
  };
  if (n > limits_.max_message_bytes)
    return refuse("chunk of " + std::to_string(n) + " bytes exceeds the limit of " +
                  std::to_string(limits_.max_message_bytes));
  if (started_) {
    if (c.dtype != header_.dtype || c.total_bytes != header_.total_bytes || c.shape != header_.shape)
      return refuse("chunk header differs from the first chunk of its tensor");
  } else {
    const auto t = from_wire(c.dtype);
    if (!t) return refuse("unknown dtype code " + std::to_string(c.dtype));
    if (c.shape.size() > static_cast<size_t>(max_ndim))
      return refuse("shape has " + std::to_string(c.shape.size()) + " dimensions");
    // The product is bounded by the limit as it is formed, so it cannot overflow.
    const size_t item = size_of(*t);
    const size_t max_elements = limits_.max_tensor_bytes / item;
    for (int64_t d : c.shape)
      if (d < 0) return refuse("negative dimension " + std::to_string(d));
    const bool has_zero = std::find(c.shape.begin(), c.shape.end(), 0) != c.shape.end();
    size_t elements = has_zero ? 0 : 1;
    for (int64_t d : c.shape) {
      if (has_zero) break;
      if (elements > max_elements / static_cast<size_t>(d))
        return refuse("tensor exceeds the limit of " + std::to_string(limits_.max_tensor_bytes) + " bytes");
      elements *= static_cast<size_t>(d);
    }
    if (c.total_bytes > limits_.max_tensor_bytes)
      return refuse("total_bytes " + std::to_string(c.total_bytes) + " exceeds the limit of " +
                    std::to_string(limits_.max_tensor_bytes));
    if (elements * item != c.total_bytes)
      return refuse("total_bytes " + std::to_string(c.total_bytes) + " does not match " +
                    std::string(name(*t)) + " shape of " + std::to_string(elements) + " elements (" +
                    std::to_string(elements * item) + " bytes)");
    if (c.offset != 0) return refuse("first chunk of a tensor has offset " + std::to_string(c.offset));
    if (!direct_) partial_ = array::empty(c.shape, *t);
    started_ = true;
    header_ = c;
    received_ = 0;
  }
  if (c.offset != received_)
    return refuse("chunk offset " + std::to_string(c.offset) + " is not where the previous chunk ended (" +
                  std::to_string(received_) + ")");
  if (n > header_.total_bytes - received_)
    return refuse("chunk [" + std::to_string(c.offset) + ", " + std::to_string(c.offset + n) +
                  ") runs past the end of a " + std::to_string(header_.total_bytes) + "-byte tensor");
  if (n == 0 && header_.total_bytes != 0) return refuse("empty chunk inside a non-empty tensor");
  if (n > 0 && direct_) {
    data(direct_);
  } else if (n > 0) {
    char* dst = partial_->mutable_data<char>() + received_;
    data([&](const char* p, size_t k) {
      std::memcpy(dst, p, k);
      dst += k;
    });
  }
  received_ += n;
  if (received_ == header_.total_bytes) {
    done = direct_ ? array() : std::move(*partial_);
    started_ = false;
    partial_.reset();
    direct_ = nullptr;
    received_ = 0;
  }
  return "";
}

std::string assembler::progress() const {
  if (!started_) return "no tensor in progress";
  const auto t = from_wire(header_.dtype);
  return "received " + std::to_string(received_) + " of " + std::to_string(header_.total_bytes) +
         " bytes of " + std::string(t ? name(*t) : "?") + shape_to_string(header_.shape);
}

}  // namespace mlxd::comm::wire
